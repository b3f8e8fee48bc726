// Package fleet defines the pool of workers the scaler sizes.
//
// Implementations: procfleet (worker loops inside this process) and asgfleet
// (an EC2 Auto Scaling group). A fleet never kills a busy worker on scale-in:
// busy workers finish (or release) their job first.
package fleet

import "context"

// Status is a fleet's size as last observed.
type Status struct {
	// Desired is the size the fleet was last asked for.
	Desired int
	// Running workers are up and taking work.
	Running int
	// Pending workers were asked for and are still starting.
	Pending int
}

// Fleet is a resizable pool of workers. Methods are safe for concurrent use.
type Fleet interface {
	// Status reports the fleet's current size.
	Status(ctx context.Context) (Status, error)
	// Scale sets the desired number of workers and returns once the request is
	// accepted; workers start and drain in the background.
	Scale(ctx context.Context, desired int) error
}
