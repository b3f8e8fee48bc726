package scaler_test

import (
	"testing"
	"time"

	"github.com/nimbus-ml/nimbus/runtime/scaler"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	p := scaler.Policy{Min: 0, Max: 20, TargetPerWorker: 4, ScaleInAfter: time.Minute}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration, n int) scaler.Recommendation {
		return scaler.Recommendation{At: now.Add(-d), Count: n}
	}
	tests := []struct {
		name    string
		policy  scaler.Policy
		obs     scaler.Observation
		desired int
		history []scaler.Recommendation
		want    scaler.Decision
	}{
		{"idle stays at zero", p, scaler.Observation{}, 0, nil, scaler.Decision{Count: 0, Direction: scaler.None}},
		{"one job from zero", p, scaler.Observation{Visible: 1}, 0, nil, scaler.Decision{Count: 1, Direction: scaler.Up}},
		{"rounds up", p, scaler.Observation{Visible: 5, InFlight: 4}, 1, nil, scaler.Decision{Count: 3, Direction: scaler.Up}},
		{"in-flight counts", p, scaler.Observation{InFlight: 8}, 0, nil, scaler.Decision{Count: 2, Direction: scaler.Up}},
		{"burst capped at max", p, scaler.Observation{Visible: 1000}, 3, nil, scaler.Decision{Count: 20, Direction: scaler.Up}},
		{"accepted leads a lagging queue", p, scaler.Observation{Visible: 2, RecentlyAccepted: 100}, 1, nil, scaler.Decision{Count: 20, Direction: scaler.Up}},
		{"dead letters need a worker", p, scaler.Observation{DeadLetters: 1}, 0, nil, scaler.Decision{Count: 1, Direction: scaler.Up}},
		{"min holds when idle", scaler.Policy{Min: 2, Max: 20, TargetPerWorker: 4, ScaleInAfter: time.Minute}, scaler.Observation{}, 2, nil, scaler.Decision{Count: 2, Direction: scaler.None}},
		{"min lifts a smaller fleet", scaler.Policy{Min: 2, Max: 20, TargetPerWorker: 4, ScaleInAfter: time.Minute}, scaler.Observation{}, 0, nil, scaler.Decision{Count: 2, Direction: scaler.Up}},
		{"no scale-in within the window", p, scaler.Observation{}, 5, []scaler.Recommendation{ago(30*time.Second, 5)}, scaler.Decision{Count: 5, Direction: scaler.None}},
		{"scale in to the window's peak", p, scaler.Observation{Visible: 4}, 5, []scaler.Recommendation{ago(30*time.Second, 3), ago(2*time.Minute, 5)}, scaler.Decision{Count: 3, Direction: scaler.Down}},
		{"to zero when idle for the window", p, scaler.Observation{}, 5, []scaler.Recommendation{ago(61*time.Second, 5)}, scaler.Decision{Count: 0, Direction: scaler.Down}},
		{"max shrinks an oversized fleet", scaler.Policy{Min: 0, Max: 3, TargetPerWorker: 4, ScaleInAfter: time.Minute}, scaler.Observation{Visible: 100}, 10, nil, scaler.Decision{Count: 3, Direction: scaler.Down}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, kept := scaler.Decide(tc.policy, tc.obs, tc.desired, tc.history, now)
			if got.Count != tc.want.Count || got.Direction != tc.want.Direction {
				t.Fatalf("Decide = %d %s (%s), want %d %s", got.Count, got.Direction, got.Reason, tc.want.Count, tc.want.Direction)
			}
			if got.Reason == "" {
				t.Error("decision has no reason")
			}
			for _, r := range kept {
				if now.Sub(r.At) >= tc.policy.ScaleInAfter && !r.At.Equal(now) {
					t.Errorf("kept recommendation from %v ago, outside the %v window", now.Sub(r.At), tc.policy.ScaleInAfter)
				}
			}
		})
	}
}
