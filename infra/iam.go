package main

import (
	"fmt"

	"github.com/nimbus-ml/nimbus/infra/policy"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Roles are the two instance roles (web+scaler, worker) with their instance
// profiles and Session Manager access. Their permissions are Grants, which
// come later because they name the worker group.
type Roles struct {
	pulumi.ResourceState

	Web    *iam.Role
	Worker *iam.Role
	// WebProfile and WorkerProfile are the instance profiles' names.
	WebProfile    pulumi.StringOutput
	WorkerProfile pulumi.StringOutput
}

// RolesArgs configures Roles.
type RolesArgs struct {
	// Partition is the ARN partition ("aws", "aws-cn", "aws-us-gov").
	Partition string
	Tags      map[string]string
}

// ssmCorePolicy is the managed policy Session Manager needs.
const ssmCorePolicy = "AmazonSSMManagedInstanceCore"

// NewRoles declares both roles.
func NewRoles(ctx *pulumi.Context, name string, args *RolesArgs, opts ...pulumi.ResourceOption) (*Roles, error) {
	r := &Roles{}
	if err := ctx.RegisterComponentResource("nimbus:infra:Roles", name, r, opts...); err != nil {
		return nil, err
	}
	trust, err := policy.Document{Version: policy.Version2012, Statement: []policy.Statement{{
		Sid:       "EC2AssumeRole",
		Effect:    "Allow",
		Principal: map[string]policy.Strings{"Service": {"ec2.amazonaws.com"}},
		Action:    policy.Strings{"sts:AssumeRole"},
	}}}.JSON()
	if err != nil {
		return nil, err
	}
	ssm := fmt.Sprintf("arn:%s:iam::aws:policy/%s", args.Partition, ssmCorePolicy)
	role := func(tier, description string) (*iam.Role, pulumi.StringOutput, error) {
		roleName := name + "-" + tier
		role, err := iam.NewRole(ctx, roleName, &iam.RoleArgs{
			Description:      pulumi.String(description),
			AssumeRolePolicy: pulumi.String(trust),
			Tags:             tagged(args.Tags, roleName),
		}, pulumi.Parent(r))
		if err != nil {
			return nil, pulumi.StringOutput{}, err
		}
		if _, err := iam.NewRolePolicyAttachment(ctx, roleName+"-ssm", &iam.RolePolicyAttachmentArgs{
			Role:      role.Name,
			PolicyArn: pulumi.String(ssm),
		}, pulumi.Parent(r)); err != nil {
			return nil, pulumi.StringOutput{}, err
		}
		profile, err := iam.NewInstanceProfile(ctx, roleName, &iam.InstanceProfileArgs{
			Role: role.Name,
			Tags: tagged(args.Tags, roleName),
		}, pulumi.Parent(r))
		if err != nil {
			return nil, pulumi.StringOutput{}, err
		}
		return role, profile.Name, nil
	}
	if r.Web, r.WebProfile, err = role("web", "Nimbus web front end and scaler"); err != nil {
		return nil, err
	}
	if r.Worker, r.WorkerProfile, err = role("worker", "Nimbus workers"); err != nil {
		return nil, err
	}
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{
		"webRole":       r.Web.Name,
		"workerRole":    r.Worker.Name,
		"webProfile":    r.WebProfile,
		"workerProfile": r.WorkerProfile,
	})
}

// Grants are the roles' least-privilege inline policies.
type Grants struct {
	pulumi.ResourceState

	WebPolicy    *iam.RolePolicy
	WorkerPolicy *iam.RolePolicy
}

// Targets are the ARNs the roles act on.
type Targets struct {
	InputQueue      pulumi.StringInput
	OutputQueue     pulumi.StringInput
	DeadLetterQueue pulumi.StringInput
	InputBucket     pulumi.StringInput
	OutputBucket    pulumi.StringInput
	WorkerGroup     pulumi.StringInput
}

// GrantsArgs configures Grants.
type GrantsArgs struct {
	WebRole    pulumi.StringInput
	WorkerRole pulumi.StringInput
	Targets    Targets
}

// NewGrants declares both roles' inline policies.
func NewGrants(ctx *pulumi.Context, name string, args *GrantsArgs, opts ...pulumi.ResourceOption) (*Grants, error) {
	g := &Grants{}
	if err := ctx.RegisterComponentResource("nimbus:infra:Grants", name, g, opts...); err != nil {
		return nil, err
	}
	var err error
	g.WebPolicy, err = iam.NewRolePolicy(ctx, name+"-web", &iam.RolePolicyArgs{
		Role:   args.WebRole,
		Policy: policyJSON(webGrants(args.Targets)),
	}, pulumi.Parent(g))
	if err != nil {
		return nil, err
	}
	g.WorkerPolicy, err = iam.NewRolePolicy(ctx, name+"-worker", &iam.RolePolicyArgs{
		Role:   args.WorkerRole,
		Policy: policyJSON(workerGrants(args.Targets)),
	}, pulumi.Parent(g))
	if err != nil {
		return nil, err
	}
	return g, ctx.RegisterResourceOutputs(g, pulumi.Map{
		"webPolicy":    g.WebPolicy.Policy,
		"workerPolicy": g.WorkerPolicy.Policy,
	})
}

// grant is an Allow statement whose resources are not known yet.
type grant struct {
	sid       string
	actions   []string
	resources []pulumi.StringInput
}

func objects(bucketArn pulumi.StringInput) pulumi.StringInput {
	return pulumi.Sprintf("%s/*", bucketArn)
}

// webGrants is what the web front end and the scaler need.
func webGrants(t Targets) []grant {
	return []grant{
		{"SubmitJobs", []string{"sqs:SendMessage", "sqs:GetQueueAttributes"}, []pulumi.StringInput{t.InputQueue}},
		{"ReadResults", []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}, []pulumi.StringInput{t.OutputQueue}},
		// The scaler reads the dead-letter depth.
		{"WatchDeadLetters", []string{"sqs:GetQueueAttributes"}, []pulumi.StringInput{t.DeadLetterQueue}},
		{"StoreUploads", []string{"s3:PutObject"}, []pulumi.StringInput{objects(t.InputBucket)}},
		// GetObject covers HeadObject.
		{"ReadResultObjects", []string{"s3:GetObject"}, []pulumi.StringInput{objects(t.OutputBucket)}},
		// ListBucket makes a missing result a 404 rather than a 403.
		{"ListResults", []string{"s3:ListBucket"}, []pulumi.StringInput{t.OutputBucket}},
		{"ScaleWorkers", []string{"autoscaling:SetDesiredCapacity"}, []pulumi.StringInput{t.WorkerGroup}},
		// DescribeAutoScalingGroups supports no resource-level permissions,
		// so it needs "*"; it is read-only (policy.WildcardResourceActions).
		{"DescribeWorkers", []string{"autoscaling:DescribeAutoScalingGroups"}, []pulumi.StringInput{pulumi.String("*")}},
	}
}

// workerGrants is what a worker needs, including draining under the
// termination lifecycle hook of its own group.
func workerGrants(t Targets) []grant {
	consume := []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}
	return []grant{
		// Workers also drain the dead-letter queue, recording those jobs
		// as failed.
		{"ConsumeJobs", consume, []pulumi.StringInput{t.InputQueue, t.DeadLetterQueue}},
		{"PublishResults", []string{"sqs:SendMessage"}, []pulumi.StringInput{t.OutputQueue}},
		{"ReadUploads", []string{"s3:GetObject"}, []pulumi.StringInput{objects(t.InputBucket)}},
		{"WriteResults", []string{"s3:PutObject", "s3:GetObject"}, []pulumi.StringInput{objects(t.OutputBucket)}},
		{"ListResults", []string{"s3:ListBucket"}, []pulumi.StringInput{t.OutputBucket}},
		{"Drain", []string{"autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"}, []pulumi.StringInput{t.WorkerGroup}},
	}
}

// policyJSON renders grants as a policy document once their ARNs are known.
func policyJSON(grants []grant) pulumi.StringOutput {
	var inputs []any
	for _, g := range grants {
		for _, r := range g.resources {
			inputs = append(inputs, r)
		}
	}
	return pulumi.All(inputs...).ApplyT(func(values []any) (string, error) {
		doc := policy.Document{Version: policy.Version2012}
		i := 0
		for _, g := range grants {
			s := policy.Statement{Sid: g.sid, Effect: "Allow", Action: g.actions}
			for range g.resources {
				arn, ok := values[i].(string)
				if !ok || arn == "" {
					return "", fmt.Errorf("statement %s: resource %d is not a known ARN", g.sid, i)
				}
				s.Resource = append(s.Resource, arn)
				i++
			}
			doc.Statement = append(doc.Statement, s)
		}
		return doc.JSON()
	}).(pulumi.StringOutput)
}
