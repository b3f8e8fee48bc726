package asgfleet_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/awsclients"
	"github.com/nimbus-ml/nimbus/runtime/fleet"
	"github.com/nimbus-ml/nimbus/runtime/fleet/asgfleet"
	"github.com/nimbus-ml/nimbus/runtime/fleet/asgfleet/asgfake"
)

// clock is a manual clock for the fake's launch delays.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func testConfig() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
	}
}

// mustAutoScaling builds the Auto Scaling client as production does, pointed
// at a started fake.
func mustAutoScaling(t *testing.T, f *asgfake.Fake) *autoscaling.Client {
	t.Helper()
	return awsclients.NewAutoScaling(testConfig(), awsclients.Config{
		Region: "us-east-1", AutoScalingEndpoint: asgfake.Start(t, f), MaxAttempts: 2,
	})
}

func mustIMDS(t *testing.T, m *asgfake.IMDS) *imds.Client {
	t.Helper()
	return awsclients.NewIMDS(testConfig(), awsclients.Config{IMDSEndpoint: asgfake.Start(t, m)})
}

func mustOpen(t *testing.T, api asgfleet.API, group string) *asgfleet.Fleet {
	t.Helper()
	f, err := asgfleet.Open(api, group)
	if err != nil {
		t.Fatalf("Open(%s): %v", group, err)
	}
	return f
}

func mustStatus(ctx context.Context, t *testing.T, f *asgfleet.Fleet, want fleet.Status) {
	t.Helper()
	got, err := f.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if got != want {
		t.Fatalf("Status = %+v, want %+v", got, want)
	}
}

func TestScaleAndStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fake := asgfake.New(asgfake.Options{LaunchDelay: time.Minute, Now: clk.Now})
	fake.AddGroup(asgfake.GroupSpec{Name: "workers", Min: 0, Max: 8, Desired: 2})
	f := mustOpen(t, mustAutoScaling(t, fake), "workers")

	mustStatus(ctx, t, f, fleet.Status{Desired: 2, Running: 2})
	if err := f.Scale(ctx, 5); err != nil {
		t.Fatalf("Scale(5): %v", err)
	}
	mustStatus(ctx, t, f, fleet.Status{Desired: 5, Running: 2, Pending: 3})
	clk.Advance(time.Minute)
	mustStatus(ctx, t, f, fleet.Status{Desired: 5, Running: 5})
	if err := f.Scale(ctx, 0); err != nil {
		t.Fatalf("Scale(0): %v", err)
	}
	mustStatus(ctx, t, f, fleet.Status{})

	var sets int
	for _, c := range fake.Calls() {
		if c.Action != "SetDesiredCapacity" {
			continue
		}
		sets++
		if got := c.Params.Get("HonorCooldown"); got != "false" {
			t.Errorf("SetDesiredCapacity sent HonorCooldown=%q, want false", got)
		}
	}
	if sets != 2 {
		t.Errorf("%d SetDesiredCapacity calls, want 2", sets)
	}
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	fake := asgfake.New(asgfake.Options{})
	fake.AddGroup(asgfake.GroupSpec{Name: "workers", Min: 1, Max: 3, Desired: 1})
	fake.AddGroup(asgfake.GroupSpec{Name: "busy", Min: 0, Max: 3})
	fake.SetBusy("busy", true)
	api := mustAutoScaling(t, fake)
	tests := []struct {
		name    string
		group   string
		desired int
		want    string
	}{
		{"above max", "workers", 4, nimbus.EINVALID},
		{"below min", "workers", 0, nimbus.EINVALID},
		{"negative", "workers", -1, nimbus.EINVALID},
		{"unknown group", "nope", 1, nimbus.ENOTFOUND},
		{"scaling activity in progress", "busy", 2, nimbus.EBUSY},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := mustOpen(t, api, tc.group).Scale(context.Background(), tc.desired)
			if got := nimbus.ErrorCode(err); got != tc.want {
				t.Errorf("Scale(%d) error %v has code %q, want %q", tc.desired, err, got, tc.want)
			}
		})
	}
	t.Run("status of unknown group", func(t *testing.T) {
		t.Parallel()
		if _, err := mustOpen(t, api, "nope").Status(context.Background()); nimbus.ErrorCode(err) != nimbus.ENOTFOUND {
			t.Errorf("Status error %v, want code %q", err, nimbus.ENOTFOUND)
		}
	})
	t.Run("unreachable endpoint", func(t *testing.T) {
		t.Parallel()
		dead := awsclients.NewAutoScaling(testConfig(), awsclients.Config{AutoScalingEndpoint: "http://127.0.0.1:1", MaxAttempts: 1})
		if _, err := mustOpen(t, dead, "workers").Status(context.Background()); nimbus.ErrorCode(err) != nimbus.EUNAVAILABLE {
			t.Errorf("Status error %v, want code %q", err, nimbus.EUNAVAILABLE)
		}
	})
}

// TestDrainOnScaleIn is the scale-in protocol end to end: the scaler lowers
// the desired capacity, the chosen instance's Drainer sees it, drains with
// heartbeats, and completes the lifecycle action, after which the instance
// is gone.
func TestDrainOnScaleIn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	fake := asgfake.New(asgfake.Options{})
	fake.AddGroup(asgfake.GroupSpec{Name: "workers", Min: 0, Max: 4, Desired: 2, Hook: "nimbus-drain"})
	g, _ := fake.Group("workers")
	victim := g.Instances[1].ID // scale-in picks the newest instance
	api := mustAutoScaling(t, fake)
	metadata := fake.IMDS(victim)

	d, err := asgfleet.NewDrainer(ctx, mustIMDS(t, metadata), api, asgfleet.DrainerOptions{
		Group: "workers", Poll: 20 * time.Millisecond, Heartbeat: 30 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("NewDrainer: %v", err)
	}
	if d.InstanceID() != victim {
		t.Fatalf("drainer acts for %q, want %q read from instance metadata", d.InstanceID(), victim)
	}
	watched := make(chan error, 1)
	go func() { watched <- d.Watch(ctx) }()

	select {
	case err := <-watched:
		t.Fatalf("Watch returned %v before scale-in", err)
	case <-time.After(100 * time.Millisecond):
	}
	f := mustOpen(t, api, "workers")
	if err := f.Scale(ctx, 1); err != nil {
		t.Fatalf("Scale(1): %v", err)
	}
	if err := <-watched; err != nil {
		t.Fatalf("Watch: %v", err)
	}
	mustStatus(ctx, t, f, fleet.Status{Desired: 1, Running: 1}) // the victim drains, not running

	err = d.Drain(ctx, func(context.Context) error {
		time.Sleep(200 * time.Millisecond) // finishing the job in hand
		return nil
	})
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	var heartbeats, completes int
	for _, c := range fake.Calls() {
		switch c.Action {
		case "RecordLifecycleActionHeartbeat":
			heartbeats++
		case "CompleteLifecycleAction":
			completes++
			if c.Params.Get("LifecycleActionResult") != "CONTINUE" || c.Params.Get("InstanceId") != victim ||
				c.Params.Get("LifecycleHookName") != "nimbus-drain" {
				t.Errorf("CompleteLifecycleAction params %v, want CONTINUE for %s on hook nimbus-drain", c.Params, victim)
			}
		}
	}
	if heartbeats == 0 || completes != 1 {
		t.Errorf("%d heartbeats and %d completions, want some heartbeats and 1 completion", heartbeats, completes)
	}
	if g, _ := fake.Group("workers"); len(g.Instances) != 1 || g.Instances[0].ID == victim {
		t.Errorf("instances after drain %+v, want only the survivor", g.Instances)
	}
	if err := d.Complete(ctx); nimbus.ErrorCode(err) != nimbus.ENOTFOUND {
		t.Errorf("second Complete error %v, want code %q", err, nimbus.ENOTFOUND)
	}
}

func TestDrainCompletesAfterFailedDrain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := asgfake.New(asgfake.Options{})
	fake.AddGroup(asgfake.GroupSpec{Name: "workers", Max: 2, Desired: 1, Hook: "drain-hook"})
	g, _ := fake.Group("workers")
	api := mustAutoScaling(t, fake)
	if err := mustOpen(t, api, "workers").Scale(ctx, 0); err != nil {
		t.Fatal(err)
	}
	d, err := asgfleet.NewDrainer(ctx, mustIMDS(t, fake.IMDS(g.Instances[0].ID)), api,
		asgfleet.DrainerOptions{Group: "workers", Hook: "drain-hook", InstanceID: g.Instances[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("release failed")
	if err := d.Drain(ctx, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Drain error %v, want it to report the drain failure", err)
	}
	if g, _ := fake.Group("workers"); len(g.Instances) != 0 {
		t.Fatalf("instances %+v remain; Drain must complete the action even after a failed drain", g.Instances)
	}
}

func TestWatchKeepsPollingThroughMetadataErrors(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	var reads atomic.Int32
	// Not yet in a group (404) for a few polls, then in service, then chosen.
	metadata := asgfake.NewIMDS("i-0000000000000abcd", func() (string, bool) {
		switch n := reads.Add(1); {
		case n <= 3:
			return "", false
		case n <= 5:
			return "InService", true
		}
		return "Terminated", true
	})
	d, err := asgfleet.NewDrainer(ctx, mustIMDS(t, metadata), mustAutoScaling(t, asgfake.New(asgfake.Options{})),
		asgfleet.DrainerOptions{Group: "workers", Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Watch(ctx); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if n := reads.Load(); n != 6 {
		t.Errorf("Watch returned after %d reads, want 6", n)
	}
}

func TestWatchStopsWithContext(t *testing.T) {
	t.Parallel()
	metadata := asgfake.NewIMDS("i-0000000000000abcd", func() (string, bool) { return "InService", true })
	d, err := asgfleet.NewDrainer(context.Background(), mustIMDS(t, metadata), mustAutoScaling(t, asgfake.New(asgfake.Options{})),
		asgfleet.DrainerOptions{Group: "workers", Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := d.Watch(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch error %v, want the context's deadline", err)
	}
}

func TestNewDrainerRejects(t *testing.T) {
	t.Parallel()
	metadata := mustIMDS(t, asgfake.NewIMDS("i-1", func() (string, bool) { return "InService", true }))
	api := mustAutoScaling(t, asgfake.New(asgfake.Options{}))
	tests := []struct {
		name string
		md   asgfleet.MetadataAPI
		api  asgfleet.LifecycleAPI
		opts asgfleet.DrainerOptions
	}{
		{"no group", metadata, api, asgfleet.DrainerOptions{}},
		{"no metadata client", nil, api, asgfleet.DrainerOptions{Group: "g"}},
		{"no autoscaling client", metadata, nil, asgfleet.DrainerOptions{Group: "g"}},
		{"negative poll", metadata, api, asgfleet.DrainerOptions{Group: "g", Poll: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := asgfleet.NewDrainer(context.Background(), tc.md, tc.api, tc.opts); nimbus.ErrorCode(err) != nimbus.EINVALID {
				t.Errorf("NewDrainer error %v, want code %q", err, nimbus.EINVALID)
			}
		})
	}
}
