// Package scaler sizes the worker fleet from the queue's depth.
//
// Decide is the pure policy; Scaler is the control loop that observes the
// queues, calls Decide and acts on the fleet:
//
//	      tick or nudge
//	idle ───────────────▶ observe ──▶ Decide ──▶ up/down: fleet.Scale
//	 ▲                                  │
//	 └──────────── none ◀───────────────┘
package scaler

import (
	"fmt"
	"time"
)

// Policy bounds and shapes the fleet's size.
type Policy struct {
	// Min and Max bound the number of workers (defaults 0 and 20).
	Min, Max int
	// TargetPerWorker is the number of jobs, waiting or in hand, one worker
	// should have (default 4).
	TargetPerWorker int
	// ScaleInAfter is the stabilisation window: the fleet shrinks only to the
	// largest size recommended during this window (default 60s).
	ScaleInAfter time.Duration
}

// DefaultPolicy scales between 0 and 20 workers.
func DefaultPolicy() Policy {
	return Policy{Min: 0, Max: 20, TargetPerWorker: 4, ScaleInAfter: 60 * time.Second}
}

// Validate reports settings that cannot work.
func (p Policy) Validate() error {
	switch {
	case p.Min < 0 || p.Max < 1 || p.Min > p.Max:
		return fmt.Errorf("workers must satisfy 0 <= min (%d) <= max (%d) and max >= 1", p.Min, p.Max)
	case p.TargetPerWorker < 1:
		return fmt.Errorf("target jobs per worker (%d) must be at least 1", p.TargetPerWorker)
	case p.ScaleInAfter < 0:
		return fmt.Errorf("scale-in window (%v) must not be negative", p.ScaleInAfter)
	}
	return nil
}

// Observation is the work the fleet has.
type Observation struct {
	// Visible and InFlight are the input queue's counts.
	Visible, InFlight int
	// DeadLetters wait to be recorded as failed, which workers do.
	DeadLetters int
	// RecentlyAccepted counts jobs the web tier accepted since the last
	// observation; it leads the queue metric, which may lag.
	RecentlyAccepted int
}

// Work is the number of jobs needing a worker.
func (o Observation) Work() int {
	return max(o.Visible+o.InFlight, o.RecentlyAccepted) + o.DeadLetters
}

// Recommendation is a size Decide computed at a time; the loop keeps the
// window's worth and passes them back.
type Recommendation struct {
	At    time.Time
	Count int
}

// Direction of a decision.
type Direction string

// Directions.
const (
	Up   Direction = "up"
	Down Direction = "down"
	None Direction = "none"
)

// Decision is what to do with the fleet and why.
type Decision struct {
	Count     int
	Direction Direction
	Reason    string
}

// Decide computes the fleet's size: ceil(work / target) clamped to
// [Min, Max]. It scales out at once and scales in only to the largest size
// recommended within the window, so a brief lull does not shed workers. It
// returns the recommendations still within the window, this one included.
func Decide(p Policy, obs Observation, desired int, history []Recommendation, now time.Time) (Decision, []Recommendation) {
	work := obs.Work()
	want := min(max((work+p.TargetPerWorker-1)/p.TargetPerWorker, p.Min), p.Max)
	kept := []Recommendation{{At: now, Count: want}}
	floor := want
	for _, r := range history {
		if now.Sub(r.At) < p.ScaleInAfter {
			kept = append(kept, r)
			floor = max(floor, r.Count)
		}
	}
	switch {
	case want > desired:
		return Decision{Count: want, Direction: Up, Reason: fmt.Sprintf("%d jobs need %d workers at %d per worker", work, want, p.TargetPerWorker)}, kept
	case floor < desired:
		return Decision{Count: floor, Direction: Down, Reason: fmt.Sprintf("at most %d workers needed over the last %v", floor, p.ScaleInAfter)}, kept
	default:
		return Decision{Count: desired, Direction: None, Reason: fmt.Sprintf("%d jobs for %d workers", work, desired)}, kept
	}
}
