package scaler

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nimbus-ml/nimbus/runtime/fleet"
	"github.com/nimbus-ml/nimbus/runtime/queue"
)

// Scaler is the control loop. Set the fields, then call Run; Nudge may be
// called from any goroutine.
type Scaler struct {
	Input queue.Queue
	// DeadLetter, if set, is counted as work: workers record its jobs.
	DeadLetter queue.Queue
	Fleet      fleet.Fleet
	Policy     Policy
	// Interval between observations (default 5s).
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger

	nudges chan int
}

// New returns a Scaler with its nudge channel ready.
func New(input, deadLetter queue.Queue, f fleet.Fleet, p Policy) *Scaler {
	return &Scaler{Input: input, DeadLetter: deadLetter, Fleet: f, Policy: p, nudges: make(chan int, 1024)}
}

// Nudge tells the loop that n jobs were just accepted, so it can scale out
// before the queue's approximate counts catch up. It never blocks.
func (s *Scaler) Nudge(n int) {
	select {
	case s.nudges <- n:
	default: // the loop is already far behind; it will see the queue
	}
}

// Run observes and scales every Interval, and at once after a nudge, until
// ctx ends. Failed observations are logged and retried on the next tick.
func (s *Scaler) Run(ctx context.Context) error {
	if err := s.Policy.Validate(); err != nil {
		return err
	}
	if s.Interval <= 0 {
		s.Interval = 5 * time.Second
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.nudges == nil {
		s.nudges = make(chan int, 1024)
	}
	ticker := time.NewTicker(s.Interval)
	defer ticker.Stop()
	var history []Recommendation
	accepted := 0
	for {
		obs, status, err := s.observe(ctx)
		if err != nil {
			s.Logger.Warn("observing the fleet failed", "err", err)
		} else {
			obs.RecentlyAccepted = accepted
			accepted = 0
			var d Decision
			d, history = Decide(s.Policy, obs, status.Desired, history, s.Now())
			if d.Direction != None {
				s.Logger.Info("scaling workers", "from", status.Desired, "to", d.Count, "direction", d.Direction, "reason", d.Reason)
				if err := s.Fleet.Scale(ctx, d.Count); err != nil && ctx.Err() == nil {
					s.Logger.Warn("scaling failed", "to", d.Count, "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case n := <-s.nudges:
			accepted += n
			// Gather the rest of a burst before observing.
			for more := true; more; {
				select {
				case n := <-s.nudges:
					accepted += n
				default:
					more = false
				}
			}
		}
	}
}

func (s *Scaler) observe(ctx context.Context) (Observation, fleet.Status, error) {
	depth, err := s.Input.Depth(ctx)
	if err != nil {
		return Observation{}, fleet.Status{}, fmt.Errorf("reading input queue depth: %w", err)
	}
	obs := Observation{Visible: depth.Visible, InFlight: depth.InFlight}
	if s.DeadLetter != nil {
		dl, err := s.DeadLetter.Depth(ctx)
		if err != nil {
			return Observation{}, fleet.Status{}, fmt.Errorf("reading dead-letter queue depth: %w", err)
		}
		obs.DeadLetters = dl.Visible
	}
	status, err := s.Fleet.Status(ctx)
	if err != nil {
		return Observation{}, fleet.Status{}, fmt.Errorf("reading fleet status: %w", err)
	}
	return obs, status, nil
}
