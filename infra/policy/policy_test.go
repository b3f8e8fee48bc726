package policy_test

import (
	"strings"
	"testing"

	"github.com/nimbus-ml/nimbus/infra/policy"
)

// bad is one resource set that each check must flag.
func bad(check string) []policy.Resource {
	component := "urn:pulumi:test::nimbus::nimbus:infra:Storage::nimbus"
	switch check {
	case "buckets-block-public-access":
		return []policy.Resource{
			{Type: policy.TypeBucket, Name: "b", ID: "b", Custom: true, Parent: component},
			{Type: policy.TypePublicAccessBlock, Name: "b", Custom: true, Parent: component, Inputs: map[string]any{
				"bucket": "b", "blockPublicAcls": true, "blockPublicPolicy": true, "ignorePublicAcls": true, "restrictPublicBuckets": false,
			}},
		}
	case "buckets-encrypted", "buckets-owner-enforced":
		return []policy.Resource{{Type: policy.TypeBucket, Name: "b", ID: "b"}}
	case "queues-encrypted":
		return []policy.Resource{{Type: policy.TypeQueue, Name: "q", Inputs: map[string]any{"sqsManagedSseEnabled": false}}}
	case "imdsv2-required":
		return []policy.Resource{{Type: policy.TypeInstance, Name: "i", Inputs: map[string]any{
			"metadataOptions": map[string]any{"httpTokens": "optional", "httpPutResponseHopLimit": 1.0},
		}}}
	case "volumes-encrypted":
		return []policy.Resource{{Type: policy.TypeLaunchTemplate, Name: "lt", Inputs: map[string]any{
			"blockDeviceMappings": []any{map[string]any{"ebs": map[string]any{"encrypted": "false"}}},
		}}}
	case "no-ssh":
		return []policy.Resource{{Type: policy.TypeSecurityGroup, Name: "sg", Inputs: map[string]any{
			"ingress": []any{map[string]any{"protocol": "tcp", "fromPort": 0.0, "toPort": 1024.0, "cidrBlocks": []any{"0.0.0.0/0"}}},
		}}}
	case "iam-least-privilege":
		return []policy.Resource{{Type: policy.TypeRolePolicy, Name: "p", Inputs: map[string]any{
			"policy": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:*","Resource":"*"}]}`,
		}}}
	case "managed-policies-allowed":
		return []policy.Resource{{Type: policy.TypeRolePolicyAttach, Name: "a", Inputs: map[string]any{
			"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
		}}}
	case "scaler-owns-desired-capacity":
		return []policy.Resource{{Type: policy.TypeGroup, Name: "g", IgnoreChanges: []string{"tags"}}}
	case "custom-resources-parented":
		return []policy.Resource{{Type: policy.TypeQueue, Name: "q", Custom: true, Parent: "urn:pulumi:test::nimbus::pulumi:pulumi:Stack::nimbus-test"}}
	}
	return nil
}

// TestChecksCatchViolations proves no check is vacuous.
func TestChecksCatchViolations(t *testing.T) {
	for _, c := range policy.Checks() {
		t.Run(c.Name, func(t *testing.T) {
			rs := bad(c.Name)
			if rs == nil {
				t.Fatalf("no bad example for %s", c.Name)
			}
			if vs := c.Run(rs); len(vs) == 0 {
				t.Errorf("%s passed a violating resource set", c.Name)
			}
		})
	}
}

func TestStatementProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   policy.Statement
		want string // substring of a problem; "" means none
	}{
		{name: "named action and resource", st: policy.Statement{Effect: "Allow", Action: policy.Strings{"sqs:SendMessage"}, Resource: policy.Strings{"arn:aws:sqs:us-east-1:1:q"}}},
		{name: "read-only describe on *", st: policy.Statement{Effect: "Allow", Action: policy.Strings{"autoscaling:DescribeAutoScalingGroups"}, Resource: policy.Strings{"*"}}},
		{name: "trust policy", st: policy.Statement{Effect: "Allow", Action: policy.Strings{"sts:AssumeRole"}, Principal: map[string]policy.Strings{"Service": {"ec2.amazonaws.com"}}}},
		{name: "broad deny", st: policy.Statement{Effect: "Deny", Action: policy.Strings{"s3:*"}, Resource: policy.Strings{"*"}}},
		{name: "star action", st: policy.Statement{Effect: "Allow", Action: policy.Strings{"*"}, Resource: policy.Strings{"arn:aws:s3:::b"}}, want: `wildcard action "*"`},
		{name: "service wildcard", st: policy.Statement{Effect: "Allow", Action: policy.Strings{"s3:Get*"}, Resource: policy.Strings{"arn:aws:s3:::b/*"}}, want: "wildcard action"},
		{name: "write on *", st: policy.Statement{Effect: "Allow", Action: policy.Strings{"autoscaling:SetDesiredCapacity"}, Resource: policy.Strings{"*"}}, want: `on resource "*"`},
		{name: "not action", st: policy.Statement{Effect: "Allow", NotAction: policy.Strings{"iam:*"}, Resource: policy.Strings{"*"}}, want: "NotAction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(policy.StatementProblems(tc.st), "; ")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("problems %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDocumentRoundTrip(t *testing.T) {
	doc, err := policy.ParseDocument(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":["a","b"]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Statement[0]; len(got.Action) != 1 || len(got.Resource) != 2 {
		t.Errorf("parsed %+v", got)
	}
	s, err := doc.JSON()
	if err != nil || !strings.Contains(s, `"Action":["s3:GetObject"]`) {
		t.Errorf("rendered %s, %v", s, err)
	}
}
