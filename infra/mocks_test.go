package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nimbus-ml/nimbus/infra/policy"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
)

const (
	testRegion  = "us-east-1"
	testAccount = "123456789012"
	testStack   = "test"
	testAMI     = "ami-0123456789abcdef0"
	bakedAMI    = "ami-0fedcba9876543210"
)

// mocks stands in for AWS: it echoes inputs, adds the outputs Nimbus reads
// (ids, ARNs, URLs) and records every registered resource for the checks.
type mocks struct {
	mu        sync.Mutex
	resources []policy.Resource
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	inputs := args.Inputs.Mappable()
	outs := args.Inputs.Copy()
	set := func(k string, v any) { outs[resource.PropertyKey(k)] = resource.NewPropertyValue(v) }
	id := args.Name + "-id"
	switch args.TypeToken {
	case policy.TypeBucket:
		id = args.Name + "-4f3a2b1"
		set("bucket", id)
		set("arn", "arn:aws:s3:::"+id)
	case policy.TypeQueue:
		id = fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", testRegion, testAccount, args.Name)
		set("url", id)
		set("name", args.Name)
		set("arn", fmt.Sprintf("arn:aws:sqs:%s:%s:%s", testRegion, testAccount, args.Name))
	case policy.TypeGroup:
		id, _ = inputs["name"].(string)
		set("arn", fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:6d2f0b4e:autoScalingGroupName/%s", testRegion, testAccount, id))
	case policy.TypeRole, "aws:iam/instanceProfile:InstanceProfile":
		set("name", args.Name+"-7c1e")
		set("arn", fmt.Sprintf("arn:aws:iam::%s:role/%s-7c1e", testAccount, args.Name))
	case "aws:ec2/eip:Eip":
		set("publicIp", "203.0.113.7")
	case "command:local:Command":
		set("stdout", testManifest)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := policy.Resource{
		Type:   args.TypeToken,
		Name:   args.Name,
		ID:     id,
		Custom: args.Custom,
		Inputs: inputs,
	}
	if rpc := args.RegisterRPC; rpc != nil {
		r.Parent = rpc.GetParent()
		r.IgnoreChanges = rpc.GetIgnoreChanges()
	}
	m.resources = append(m.resources, r)
	return id, outs, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	switch args.Token {
	case "aws:index/getRegion:getRegion":
		return resource.NewPropertyMapFromMap(map[string]any{"name": testRegion, "id": testRegion}), nil
	case "aws:index/getPartition:getPartition":
		return resource.NewPropertyMapFromMap(map[string]any{"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}), nil
	case "aws:index/getAvailabilityZones:getAvailabilityZones":
		return resource.NewPropertyMapFromMap(map[string]any{"names": []any{"us-east-1a", "us-east-1b", "us-east-1c"}, "id": testRegion}), nil
	case "aws:ec2/getVpc:getVpc":
		return resource.NewPropertyMapFromMap(map[string]any{"id": "vpc-default", "cidrBlock": "172.31.0.0/16"}), nil
	case "aws:ec2/getSubnets:getSubnets":
		return resource.NewPropertyMapFromMap(map[string]any{"ids": []any{"subnet-a", "subnet-b", "subnet-c"}, "id": testRegion}), nil
	}
	return nil, fmt.Errorf("mocks: unexpected call %s", args.Token)
}

// testManifest is what Packer's manifest post-processor writes.
const testManifest = `{
  "builds": [
    {"name": "nimbus", "builder_type": "amazon-ebs", "artifact_id": "us-east-1:ami-0aaaaaaaaaaaaaaaa", "packer_run_uuid": "old"},
    {"name": "nimbus", "builder_type": "amazon-ebs", "artifact_id": "us-east-1:` + bakedAMI + `", "packer_run_uuid": "new"}
  ],
  "last_run_uuid": "new"
}`

// stack is one mocked `pulumi up`.
type stack struct {
	*Deployment
	resources []policy.Resource
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.AmiID = testAMI
	cfg.AllowedCidrs = []string{"198.51.100.0/24", "203.0.113.7/32"}
	return cfg
}

// mustDeploy runs Deploy against the mocks.
func mustDeploy(t *testing.T, cfg Config) stack {
	t.Helper()
	m := &mocks{}
	var d *Deployment
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		var err error
		d, err = Deploy(ctx, cfg)
		return err
	}, pulumi.WithMocks("nimbus", testStack, m))
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return stack{Deployment: d, resources: m.resources}
}

// ofType returns the recorded resources of typ.
func (s stack) ofType(typ string) []policy.Resource {
	var out []policy.Resource
	for _, r := range s.resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// one returns the single resource of typ whose name ends in suffix.
func (s stack) one(t *testing.T, typ, suffix string) policy.Resource {
	t.Helper()
	var found []policy.Resource
	for _, r := range s.ofType(typ) {
		if strings.HasSuffix(r.Name, suffix) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s named *%s, got %d", typ, suffix, len(found))
	}
	return found[0]
}

// await resolves an output after the mocked run.
func await[T any](t *testing.T, o pulumi.Output) T {
	t.Helper()
	res, err := internals.UnsafeAwaitOutput(context.Background(), o)
	if err != nil {
		t.Fatalf("awaiting output: %v", err)
	}
	v, ok := res.Value.(T)
	if !ok {
		t.Fatalf("output is %T, want %T", res.Value, v)
	}
	return v
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
}
