// Package asgfleet is a fleet.Fleet on an EC2 Auto Scaling group, and the
// worker-side Drainer that makes its scale-in safe.
//
// The scaler owns the group's desired capacity: Scale calls
// SetDesiredCapacity (ignoring cooldowns, since the scaler keeps its own) and
// Status reads DescribeAutoScalingGroups, counting InService instances as
// running and Pending ones as pending.
//
// # Scale-in without losing work
//
// Auto Scaling chooses which instances to terminate, and the scaler does not
// know which workers are busy. A termination lifecycle hook on the group
// (default name "nimbus-drain", created by the infrastructure) parks each
// chosen instance in Terminating:Wait. On the instance, a Drainer polls its
// own target lifecycle state in instance metadata (IMDSv2); when that reads
// "Terminated", the worker stops receiving, finishes or releases its job,
// and the Drainer completes the lifecycle action, sending heartbeats while
// draining takes long. The alternative, workers setting scale-in protection
// while busy, costs two API calls per job and races with the scaler's
// decisions; the hook costs nothing until an instance is chosen.
//
// Errors carry Nimbus codes: an unknown group is nimbus.ENOTFOUND, a desired
// count outside the group's bounds nimbus.EINVALID, a scaling activity that
// blocks the change nimbus.EBUSY, and throttling or an unreachable endpoint
// nimbus.EUNAVAILABLE, after the SDK client's own retries.
package asgfleet

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/smithy-go"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/awsclients/awserr"
	"github.com/nimbus-ml/nimbus/runtime/fleet"
)

// API is the part of *autoscaling.Client a Fleet uses.
type API interface {
	SetDesiredCapacity(ctx context.Context, in *autoscaling.SetDesiredCapacityInput, optFns ...func(*autoscaling.Options)) (*autoscaling.SetDesiredCapacityOutput, error)
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
}

var _ API = (*autoscaling.Client)(nil)

// Fleet is one Auto Scaling group. Its methods are safe for concurrent use.
type Fleet struct {
	api   API
	group string
}

var _ fleet.Fleet = (*Fleet)(nil)

// Open returns the fleet for the group called name, reached through api
// (usually an *autoscaling.Client from awsclients.NewAutoScaling). It makes
// no request: a missing group shows on first use as nimbus.ENOTFOUND.
func Open(api API, group string) (*Fleet, error) {
	if api == nil {
		return nil, nimbus.Errorf(nimbus.EINVALID, "asgfleet: no Auto Scaling client")
	}
	if group == "" {
		return nil, nimbus.Errorf(nimbus.EINVALID, "asgfleet: the Auto Scaling group name is empty")
	}
	return &Fleet{api: api, group: group}, nil
}

// Group is the Auto Scaling group's name.
func (f *Fleet) Group() string { return f.group }

// codes maps Auto Scaling error codes to Nimbus codes. ValidationError is
// refined by wrap: Auto Scaling also uses it for names it cannot find.
var codes = awserr.Codes{
	"ScalingActivityInProgress": nimbus.EBUSY,
	"ResourceContention":        nimbus.EBUSY,
	"ResourceInUse":             nimbus.EBUSY,
	"LimitExceeded":             nimbus.EINVALID,
	"ServiceLinkedRoleFailure":  nimbus.EINTERNAL,
}

func wrap(err error, format string, args ...any) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "ValidationError" {
		// "AutoScalingGroup name not found - ...", "No active Lifecycle
		// Action found with instance ID ...": the thing named is gone.
		msg := strings.ToLower(apiErr.ErrorMessage())
		if strings.Contains(msg, "not found") || strings.Contains(msg, "no active lifecycle action") {
			return nimbus.Errorf(nimbus.ENOTFOUND, format+": %w", append(args, err)...)
		}
	}
	return awserr.Wrap(err, codes, format, args...)
}

// Status implements fleet.Status with one DescribeAutoScalingGroups call.
// Running counts InService instances; Pending counts those still launching
// (Pending, Pending:Wait, Pending:Proceed). Instances being drained or
// terminated count as neither. A missing group is nimbus.ENOTFOUND.
func (f *Fleet) Status(ctx context.Context) (fleet.Status, error) {
	out, err := f.api.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{
		AutoScalingGroupNames: []string{f.group},
	})
	if err != nil {
		return fleet.Status{}, wrap(err, "describing Auto Scaling group %s", f.group)
	}
	for _, g := range out.AutoScalingGroups {
		if aws.ToString(g.AutoScalingGroupName) != f.group {
			continue
		}
		s := fleet.Status{Desired: int(aws.ToInt32(g.DesiredCapacity))}
		for _, in := range g.Instances {
			switch in.LifecycleState {
			case types.LifecycleStateInService:
				s.Running++
			case types.LifecycleStatePending, types.LifecycleStatePendingWait, types.LifecycleStatePendingProceed:
				s.Pending++
			}
		}
		return s, nil
	}
	// DescribeAutoScalingGroups answers an unknown name with an empty list.
	return fleet.Status{}, nimbus.Errorf(nimbus.ENOTFOUND, "Auto Scaling group %s not found", f.group)
}

// Scale implements fleet.Scale with SetDesiredCapacity, not honouring the
// group's cooldown. It returns once Auto Scaling accepted the new capacity;
// instances launch, and drain through the lifecycle hook, afterwards. A
// count outside the group's MinSize..MaxSize is nimbus.EINVALID.
func (f *Fleet) Scale(ctx context.Context, desired int) error {
	if desired < 0 {
		return nimbus.Errorf(nimbus.EINVALID, "desired capacity %d is negative", desired)
	}
	_, err := f.api.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: aws.String(f.group),
		DesiredCapacity:      aws.Int32(int32(min(desired, 1<<30))),
		HonorCooldown:        aws.Bool(false),
	})
	if err != nil {
		return wrap(err, "setting desired capacity of Auto Scaling group %s to %d", f.group, desired)
	}
	return nil
}
