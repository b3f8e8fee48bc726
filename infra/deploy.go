package main

import (
	"fmt"
	"strconv"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Deployment is every component of a Nimbus stack.
type Deployment struct {
	Network *Network
	Storage *Storage
	Queues  *Queues
	Roles   *Roles
	Image   *Image
	Workers *Workers
	Grants  *Grants
	Web     *Web
	// Region the stack runs in.
	Region string
}

// Deploy declares a Nimbus stack from cfg.
func Deploy(ctx *pulumi.Context, cfg Config) (*Deployment, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	region, err := aws.GetRegion(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("looking up the region: %w", err)
	}
	partition, err := aws.GetPartition(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("looking up the partition: %w", err)
	}
	tags := map[string]string{"project": "nimbus", "stack": ctx.Stack()}
	d := &Deployment{Region: region.Name}
	const name = "nimbus"

	if d.Network, err = NewNetwork(ctx, name, &NetworkArgs{
		UseDefaultVpc: cfg.UseDefaultVpc,
		VpcCidr:       cfg.VpcCidr,
		Region:        region.Name,
		HTTPPort:      cfg.HTTPPort,
		AllowedCidrs:  cfg.AllowedCidrs,
		Tags:          tags,
	}); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	if d.Storage, err = NewStorage(ctx, name, &StorageArgs{
		RetentionDays: cfg.RetentionDays,
		ForceDestroy:  cfg.ForceDestroy,
		Tags:          tags,
	}); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if d.Queues, err = NewQueues(ctx, name, &QueuesArgs{
		VisibilityTimeoutSeconds: cfg.VisibilityTimeoutSeconds,
		MaxReceiveCount:          cfg.MaxReceiveCount,
		Tags:                     tags,
	}); err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	if d.Roles, err = NewRoles(ctx, name, &RolesArgs{Partition: partition.Partition, Tags: tags}); err != nil {
		return nil, fmt.Errorf("roles: %w", err)
	}
	if d.Image, err = NewImage(ctx, name, &ImageArgs{
		AmiID:    cfg.AmiID,
		RepoRoot: cfg.RepoRoot,
		Region:   region.Name,
	}); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}

	groupName := fmt.Sprintf("nimbus-%s-workers", ctx.Stack())
	env := pulumi.All(
		d.Queues.Input.Url, d.Queues.Output.Url, d.Queues.DeadLetter.Url,
		d.Storage.Input.Bucket, d.Storage.Output.Bucket,
	).ApplyT(func(v []any) map[string]string {
		return RuntimeEnv(cfg, RuntimeTargets{
			Region:          region.Name,
			InputQueue:      v[0].(string),
			OutputQueue:     v[1].(string),
			DeadLetterQueue: v[2].(string),
			InputBucket:     v[3].(string),
			OutputBucket:    v[4].(string),
			Group:           groupName,
		})
	}).(pulumi.StringMapOutput)
	userData := func(u UserData) pulumi.StringOutput {
		return env.ApplyT(func(e map[string]string) (string, error) {
			u.Env = e
			return u.Render()
		}).(pulumi.StringOutput)
	}

	subnets := d.Network.SubnetIDs
	if d.Workers, err = NewWorkers(ctx, name+"-worker", &WorkersArgs{
		GroupName:       groupName,
		AmiID:           d.Image.AmiID,
		InstanceType:    cfg.WorkerInstanceType,
		InstanceProfile: d.Roles.WorkerProfile,
		SecurityGroupID: d.Network.WorkerSecurityGroupID,
		SubnetIDs:       subnets,
		UserData: userData(UserData{
			Role:               "worker",
			Units:              []string{"nimbus-worker.service"},
			StopTimeoutSeconds: cfg.drainSeconds(),
		}),
		RootVolumeGiB:    cfg.RootVolumeGiB,
		MinSize:          cfg.MinWorkers,
		MaxSize:          cfg.MaxWorkers,
		HookName:         cfg.LifecycleHookName,
		HeartbeatSeconds: cfg.drainSeconds(),
		WarmPool:         cfg.WarmPool,
		WarmPoolMinSize:  cfg.WarmPoolMinSize,
		Tags:             tags,
	}); err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	if d.Grants, err = NewGrants(ctx, name, &GrantsArgs{
		WebRole:    d.Roles.Web.Name,
		WorkerRole: d.Roles.Worker.Name,
		Targets: Targets{
			InputQueue:      d.Queues.Input.Arn,
			OutputQueue:     d.Queues.Output.Arn,
			DeadLetterQueue: d.Queues.DeadLetter.Arn,
			InputBucket:     d.Storage.Input.Arn,
			OutputBucket:    d.Storage.Output.Arn,
			WorkerGroup:     d.Workers.Group.Arn,
		},
	}); err != nil {
		return nil, fmt.Errorf("grants: %w", err)
	}
	if d.Web, err = NewWeb(ctx, name+"-web", &WebArgs{
		AmiID:           d.Image.AmiID,
		InstanceType:    cfg.WebInstanceType,
		InstanceProfile: d.Roles.WebProfile,
		SecurityGroupID: d.Network.WebSecurityGroupID,
		SubnetID:        subnets.Index(pulumi.Int(0)),
		UserData: userData(UserData{
			Role:  "web",
			Units: []string{"nimbus-web.service", "nimbus-scaler.service"},
		}),
		RootVolumeGiB: cfg.RootVolumeGiB,
		HTTPPort:      cfg.HTTPPort,
		After:         []pulumi.Resource{d.Grants.WebPolicy},
		Tags:          tags,
	}); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return d, nil
}

// RuntimeTargets are the resolved names and addresses the runtime reads.
type RuntimeTargets struct {
	Region          string
	InputQueue      string
	OutputQueue     string
	DeadLetterQueue string
	InputBucket     string
	OutputBucket    string
	Group           string
}

// AssetsDir is where the AMI keeps ONNX Runtime, the model and the labels.
const AssetsDir = "/opt/nimbus/assets"

// RuntimeEnv is /etc/nimbus/env for both roles (each reads what it needs).
func RuntimeEnv(cfg Config, t RuntimeTargets) map[string]string {
	env := map[string]string{
		"NIMBUS_BACKEND": "aws",
		"NIMBUS_REGION":  t.Region,
		// For the AWS SDK's own region lookup (and the aws CLI in a
		// Session Manager shell).
		"AWS_REGION":               t.Region,
		"NIMBUS_INPUT_QUEUE":       t.InputQueue,
		"NIMBUS_OUTPUT_QUEUE":      t.OutputQueue,
		"NIMBUS_DEAD_LETTER_QUEUE": t.DeadLetterQueue,
		"NIMBUS_INPUT_BUCKET":      t.InputBucket,
		"NIMBUS_OUTPUT_BUCKET":     t.OutputBucket,
		"NIMBUS_GROUP":             t.Group,
		"NIMBUS_LIFECYCLE_HOOK":    cfg.LifecycleHookName,
		"NIMBUS_ADDR":              ":" + strconv.Itoa(cfg.HTTPPort),
		"NIMBUS_MIN_WORKERS":       strconv.Itoa(cfg.MinWorkers),
		"NIMBUS_MAX_WORKERS":       strconv.Itoa(cfg.MaxWorkers),
		"NIMBUS_ASSETS":            AssetsDir,
	}
	if cfg.Model != "" {
		env["NIMBUS_MODEL"] = cfg.Model
		env["NIMBUS_MODEL_SHA256"] = cfg.ModelSHA256
	}
	return env
}
