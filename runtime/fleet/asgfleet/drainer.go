package asgfleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
)

// MetadataAPI is the part of *imds.Client a Drainer uses.
type MetadataAPI interface {
	GetMetadata(ctx context.Context, in *imds.GetMetadataInput, optFns ...func(*imds.Options)) (*imds.GetMetadataOutput, error)
}

// LifecycleAPI is the part of *autoscaling.Client a Drainer uses.
type LifecycleAPI interface {
	CompleteLifecycleAction(ctx context.Context, in *autoscaling.CompleteLifecycleActionInput, optFns ...func(*autoscaling.Options)) (*autoscaling.CompleteLifecycleActionOutput, error)
	RecordLifecycleActionHeartbeat(ctx context.Context, in *autoscaling.RecordLifecycleActionHeartbeatInput, optFns ...func(*autoscaling.Options)) (*autoscaling.RecordLifecycleActionHeartbeatOutput, error)
}

var (
	_ MetadataAPI  = (*imds.Client)(nil)
	_ LifecycleAPI = (*autoscaling.Client)(nil)
)

// Instance metadata paths, under /latest/meta-data/.
const (
	pathInstanceID       = "instance-id"
	pathTargetLifecycle  = "autoscaling/target-lifecycle-state"
	targetStateTerminate = "Terminated"
)

// Defaults for DrainerOptions.
const (
	DefaultHook      = "nimbus-drain"
	DefaultPoll      = 5 * time.Second
	DefaultHeartbeat = time.Minute
)

// DrainerOptions configure a Drainer.
type DrainerOptions struct {
	// Group is the Auto Scaling group the instance belongs to (required).
	Group string
	// Hook is the termination lifecycle hook's name (default "nimbus-drain").
	Hook string
	// InstanceID is this instance's id; empty means read it from instance
	// metadata when the Drainer is made.
	InstanceID string
	// Poll is how often Watch reads the target lifecycle state (default 5s).
	Poll time.Duration
	// Heartbeat is how often Drain extends the lifecycle action while the
	// drain function runs (default 1m). Keep it well below the hook's
	// heartbeat timeout, which the infrastructure sets.
	Heartbeat time.Duration
	// Logger receives polling problems and drain progress (default: discard).
	Logger *slog.Logger
}

// Drainer lets a worker instance leave its Auto Scaling group without losing
// work: Watch tells it when the group has chosen it for termination, and
// Drain (or Heartbeat and Complete) lets the termination go ahead once the
// worker has stopped. Its methods are safe for concurrent use.
type Drainer struct {
	md   MetadataAPI
	api  LifecycleAPI
	opts DrainerOptions
}

// NewDrainer returns a Drainer for this instance. When opts.InstanceID is
// empty it reads the id from instance metadata, so it fails off EC2 (or
// without an IMDS endpoint override) with nimbus.EUNAVAILABLE.
func NewDrainer(ctx context.Context, md MetadataAPI, api LifecycleAPI, opts DrainerOptions) (*Drainer, error) {
	if md == nil || api == nil {
		return nil, nimbus.Errorf(nimbus.EINVALID, "asgfleet: the drainer needs both an instance metadata and an Auto Scaling client")
	}
	if opts.Group == "" {
		return nil, nimbus.Errorf(nimbus.EINVALID, "asgfleet: the drainer needs the Auto Scaling group name")
	}
	if opts.Poll < 0 || opts.Heartbeat < 0 {
		return nil, nimbus.Errorf(nimbus.EINVALID, "asgfleet: negative poll (%v) or heartbeat (%v) interval", opts.Poll, opts.Heartbeat)
	}
	opts.Hook = cmpOr(opts.Hook, DefaultHook)
	opts.Poll = cmpOr(opts.Poll, DefaultPoll)
	opts.Heartbeat = cmpOr(opts.Heartbeat, DefaultHeartbeat)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Drainer{md: md, api: api, opts: opts}
	if d.opts.InstanceID == "" {
		id, err := d.metadata(ctx, pathInstanceID)
		if err != nil {
			return nil, err
		}
		d.opts.InstanceID = id
	}
	d.opts.Logger = d.opts.Logger.With("group", opts.Group, "hook", d.opts.Hook, "instance", d.opts.InstanceID)
	return d, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// InstanceID is the instance this Drainer acts for.
func (d *Drainer) InstanceID() string { return d.opts.InstanceID }

// metadata reads one instance metadata value. The client fetches and
// refreshes the IMDSv2 session token itself.
func (d *Drainer) metadata(ctx context.Context, path string) (string, error) {
	out, err := d.md.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("reading instance metadata %s: %w", path, ctx.Err())
		}
		return "", nimbus.Errorf(nimbus.EUNAVAILABLE, "reading instance metadata %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 4096))
	if err != nil {
		return "", nimbus.Errorf(nimbus.EUNAVAILABLE, "reading instance metadata %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Watch blocks until the group has chosen this instance for termination,
// returning nil, or until ctx is done, returning ctx's error. It reads the
// target lifecycle state every Poll interval, first at once; failed reads
// (metadata not yet populated, a blip) are logged and retried at the next
// poll, never returned.
func (d *Drainer) Watch(ctx context.Context) error {
	ticker := time.NewTicker(d.opts.Poll)
	defer ticker.Stop()
	last, failing := "", false
	for {
		state, err := d.metadata(ctx, pathTargetLifecycle)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("watching lifecycle state: %w", ctx.Err())
		case err != nil:
			// Logged once per outage, not on every poll.
			if !failing {
				d.opts.Logger.WarnContext(ctx, "cannot read target lifecycle state; will keep polling", "err", err)
			}
			failing = true
		case state == targetStateTerminate:
			d.opts.Logger.InfoContext(ctx, "instance chosen for termination; draining")
			return nil
		default:
			failing = false
			if state != last {
				d.opts.Logger.InfoContext(ctx, "target lifecycle state", "state", state)
				last = state
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("watching lifecycle state: %w", ctx.Err())
		case <-ticker.C:
		}
	}
}

// Heartbeat extends the lifecycle action by the hook's heartbeat timeout.
// It is nimbus.ENOTFOUND when no action is waiting for this instance (it was
// not chosen, or the action already timed out or completed).
func (d *Drainer) Heartbeat(ctx context.Context) error {
	_, err := d.api.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String(d.opts.Group),
		LifecycleHookName:    aws.String(d.opts.Hook),
		InstanceId:           aws.String(d.opts.InstanceID),
	})
	if err != nil {
		return wrap(err, "recording lifecycle heartbeat for %s", d.opts.InstanceID)
	}
	return nil
}

// Complete lets the termination go ahead (result CONTINUE). Call it once the
// worker holds no job. It is nimbus.ENOTFOUND when no action is waiting.
func (d *Drainer) Complete(ctx context.Context) error {
	_, err := d.api.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName:  aws.String(d.opts.Group),
		LifecycleHookName:     aws.String(d.opts.Hook),
		InstanceId:            aws.String(d.opts.InstanceID),
		LifecycleActionResult: aws.String("CONTINUE"),
	})
	if err != nil {
		return wrap(err, "completing lifecycle action for %s", d.opts.InstanceID)
	}
	d.opts.Logger.InfoContext(ctx, "lifecycle action completed; instance will terminate")
	return nil
}

// Drain runs drain (which stops the worker: no new receives, in-flight jobs
// finished or released) while sending a heartbeat every Heartbeat interval,
// then calls Complete. It completes even when drain fails, because the
// instance terminates either way and a released job is redelivered; drain's
// error is returned joined with Complete's. The heartbeat goroutine ends
// before Drain returns. Heartbeat failures are logged, not fatal: the hook's
// own timeout still ends the wait.
func (d *Drainer) Drain(ctx context.Context, drain func(context.Context) error) error {
	hbCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(d.opts.Heartbeat)
		defer ticker.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-ticker.C:
				if err := d.Heartbeat(hbCtx); err != nil && hbCtx.Err() == nil {
					d.opts.Logger.WarnContext(hbCtx, "lifecycle heartbeat failed", "err", err)
				}
			}
		}
	}()
	drainErr := drain(ctx)
	stop()
	wg.Wait()
	if drainErr != nil {
		drainErr = fmt.Errorf("draining before termination: %w", drainErr)
	}
	return errors.Join(drainErr, d.Complete(ctx))
}
