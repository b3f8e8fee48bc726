package main

import (
	"encoding/base64"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Workers is the worker Auto Scaling group. Its desired capacity belongs to
// the scaler (SetDesiredCapacity); Pulumi sets it once, at creation, and
// ignores it after. Scale-in goes through a termination lifecycle hook the
// worker drains under.
type Workers struct {
	pulumi.ResourceState

	LaunchTemplate *ec2.LaunchTemplate
	Group          *autoscaling.Group
	Hook           *autoscaling.LifecycleHook
}

// WorkersArgs configures Workers.
type WorkersArgs struct {
	// GroupName is fixed (not auto-named) so that user data can carry it.
	GroupName       string
	AmiID           pulumi.StringInput
	InstanceType    string
	InstanceProfile pulumi.StringInput
	SecurityGroupID pulumi.StringInput
	SubnetIDs       pulumi.StringArrayInput
	// UserData is the plain first-boot script.
	UserData      pulumi.StringInput
	RootVolumeGiB int
	MinSize       int
	MaxSize       int
	// HookName and HeartbeatSeconds configure the drain hook.
	HookName         string
	HeartbeatSeconds int
	WarmPool         bool
	WarmPoolMinSize  int
	Tags             map[string]string
}

// NewWorkers declares the launch template, group and drain hook.
func NewWorkers(ctx *pulumi.Context, name string, args *WorkersArgs, opts ...pulumi.ResourceOption) (*Workers, error) {
	w := &Workers{}
	if err := ctx.RegisterComponentResource("nimbus:infra:Workers", name, w, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(w)
	userData := args.UserData.ToStringOutput().ApplyT(func(s string) string {
		return base64.StdEncoding.EncodeToString([]byte(s))
	}).(pulumi.StringOutput)

	lt, err := ec2.NewLaunchTemplate(ctx, name, &ec2.LaunchTemplateArgs{
		Description:         pulumi.String("Nimbus worker"),
		ImageId:             args.AmiID,
		InstanceType:        pulumi.String(args.InstanceType),
		IamInstanceProfile:  ec2.LaunchTemplateIamInstanceProfileArgs{Name: args.InstanceProfile},
		VpcSecurityGroupIds: pulumi.StringArray{args.SecurityGroupID},
		MetadataOptions: ec2.LaunchTemplateMetadataOptionsArgs{
			HttpEndpoint:            pulumi.String("enabled"),
			HttpTokens:              pulumi.String("required"),
			HttpPutResponseHopLimit: pulumi.Int(imdsHopLimit),
			InstanceMetadataTags:    pulumi.String("disabled"),
		},
		BlockDeviceMappings: ec2.LaunchTemplateBlockDeviceMappingArray{ec2.LaunchTemplateBlockDeviceMappingArgs{
			DeviceName: pulumi.String(rootDevice),
			Ebs: ec2.LaunchTemplateBlockDeviceMappingEbsArgs{
				VolumeSize:          pulumi.Int(args.RootVolumeGiB),
				VolumeType:          pulumi.String("gp3"),
				Encrypted:           pulumi.String("true"),
				DeleteOnTermination: pulumi.String("true"),
			},
		}},
		UserData:             userData,
		UpdateDefaultVersion: pulumi.Bool(true),
		TagSpecifications: ec2.LaunchTemplateTagSpecificationArray{
			ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("instance"), Tags: tagged(args.Tags, name)},
			ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("volume"), Tags: tagged(args.Tags, name)},
		},
		Tags: tagged(args.Tags, name),
	}, parent)
	if err != nil {
		return nil, err
	}

	var warmPool autoscaling.GroupWarmPoolPtrInput
	if args.WarmPool {
		warmPool = autoscaling.GroupWarmPoolArgs{
			PoolState: pulumi.String("Stopped"),
			MinSize:   pulumi.Int(args.WarmPoolMinSize),
			// A drained worker is terminated, not returned to the pool.
			InstanceReusePolicy: autoscaling.GroupWarmPoolInstanceReusePolicyArgs{ReuseOnScaleIn: pulumi.Bool(false)},
		}
	}
	group, err := autoscaling.NewGroup(ctx, name, &autoscaling.GroupArgs{
		Name:               pulumi.String(args.GroupName),
		MinSize:            pulumi.Int(args.MinSize),
		MaxSize:            pulumi.Int(args.MaxSize),
		DesiredCapacity:    pulumi.Int(args.MinSize),
		VpcZoneIdentifiers: args.SubnetIDs,
		LaunchTemplate: autoscaling.GroupLaunchTemplateArgs{
			Id:      lt.ID(),
			Version: pulumi.String("$Latest"),
		},
		HealthCheckType:        pulumi.String("EC2"),
		HealthCheckGracePeriod: pulumi.Int(120),
		// Group metrics at one-minute granularity are free.
		EnabledMetrics: pulumi.ToStringArray([]string{
			"GroupDesiredCapacity", "GroupInServiceInstances", "GroupPendingInstances",
			"GroupTerminatingInstances", "GroupTotalInstances",
		}),
		MetricsGranularity:  pulumi.String("1Minute"),
		WarmPool:            warmPool,
		ForceDeleteWarmPool: pulumi.Bool(true),
		Tags: autoscaling.GroupTagArray{
			autoscaling.GroupTagArgs{Key: pulumi.String("Name"), Value: pulumi.String(name), PropagateAtLaunch: pulumi.Bool(true)},
		},
	}, parent, pulumi.IgnoreChanges([]string{"desiredCapacity"}))
	if err != nil {
		return nil, err
	}
	hook, err := autoscaling.NewLifecycleHook(ctx, name+"-drain", &autoscaling.LifecycleHookArgs{
		Name:                 pulumi.String(args.HookName),
		AutoscalingGroupName: group.Name,
		LifecycleTransition:  pulumi.String("autoscaling:EC2_INSTANCE_TERMINATING"),
		HeartbeatTimeout:     pulumi.Int(args.HeartbeatSeconds),
		// If a worker dies mid-drain the instance still goes away; its job
		// reappears on the queue after the visibility timeout.
		DefaultResult: pulumi.String("CONTINUE"),
	}, parent)
	if err != nil {
		return nil, err
	}

	w.LaunchTemplate, w.Group, w.Hook = lt, group, hook
	return w, ctx.RegisterResourceOutputs(w, pulumi.Map{
		"groupName":        group.Name,
		"groupArn":         group.Arn,
		"launchTemplateId": lt.ID(),
		"hookName":         hook.Name,
	})
}

const (
	// imdsHopLimit 1 reaches processes on the host, not containers.
	imdsHopLimit = 1
	// rootDevice is the root volume's device on Canonical's Ubuntu AMIs.
	rootDevice = "/dev/sda1"
)
