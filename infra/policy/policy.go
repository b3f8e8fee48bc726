package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Resource is one declared resource as the checks see it: its type token,
// logical name, physical id, parent URN and inputs as plain Go values
// (maps, slices, strings, float64s, bools).
type Resource struct {
	Type          string
	Name          string
	ID            string
	URN           string
	Parent        string
	Custom        bool
	Inputs        map[string]any
	IgnoreChanges []string
}

// Violation is one broken invariant.
type Violation struct {
	Check    string
	Resource string // type and name
	Message  string
}

func (v Violation) String() string { return v.Check + ": " + v.Resource + ": " + v.Message }

// Check is one named invariant over the whole resource set.
type Check struct {
	Name string
	Run  func(rs []Resource) []Violation
}

// Resource type tokens the checks look at.
const (
	TypeBucket            = "aws:s3/bucketV2:BucketV2"
	TypePublicAccessBlock = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
	TypeBucketEncryption  = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
	TypeBucketOwnership   = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
	TypeBucketPolicy      = "aws:s3/bucketPolicy:BucketPolicy"
	TypeQueue             = "aws:sqs/queue:Queue"
	TypeQueuePolicy       = "aws:sqs/queuePolicy:QueuePolicy"
	TypeInstance          = "aws:ec2/instance:Instance"
	TypeLaunchTemplate    = "aws:ec2/launchTemplate:LaunchTemplate"
	TypeSecurityGroup     = "aws:ec2/securityGroup:SecurityGroup"
	TypeSecurityGroupRule = "aws:ec2/securityGroupRule:SecurityGroupRule"
	TypeIngressRule       = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
	TypeKeyPair           = "aws:ec2/keyPair:KeyPair"
	TypeRole              = "aws:iam/role:Role"
	TypeRolePolicy        = "aws:iam/rolePolicy:RolePolicy"
	TypeIAMPolicy         = "aws:iam/policy:Policy"
	TypeRolePolicyAttach  = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
	TypeGroup             = "aws:autoscaling/group:Group"
	TypeStack             = "pulumi:pulumi:Stack"
)

// WildcardResourceActions may name Resource "*" because AWS offers no
// resource-level permissions for them. Each must be read-only.
var WildcardResourceActions = []string{
	// Describes groups; supports no resource ARNs. Read-only.
	"autoscaling:DescribeAutoScalingGroups",
}

// ManagedPolicies are the AWS managed policies a role may carry.
var ManagedPolicies = []string{
	// Session Manager instead of SSH.
	"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
}

// Checks returns every invariant.
func Checks() []Check {
	return []Check{
		{"buckets-block-public-access", bucketsBlockPublicAccess},
		{"buckets-encrypted", bucketsEncrypted},
		{"buckets-owner-enforced", bucketsOwnerEnforced},
		{"queues-encrypted", queuesEncrypted},
		{"imdsv2-required", imdsv2Required},
		{"volumes-encrypted", volumesEncrypted},
		{"no-ssh", noSSH},
		{"iam-least-privilege", iamLeastPrivilege},
		{"managed-policies-allowed", managedPoliciesAllowed},
		{"scaler-owns-desired-capacity", scalerOwnsDesiredCapacity},
		{"custom-resources-parented", customResourcesParented},
	}
}

// Run runs every check over rs.
func Run(rs []Resource) []Violation {
	var out []Violation
	for _, c := range Checks() {
		for _, v := range c.Run(rs) {
			v.Check = c.Name
			out = append(out, v)
		}
	}
	return out
}

func violation(r Resource, format string, a ...any) Violation {
	return Violation{Resource: r.Type + " " + r.Name, Message: fmt.Sprintf(format, a...)}
}

func ofType(rs []Resource, typ string) []Resource {
	var out []Resource
	for _, r := range rs {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// Get walks a path of map keys and list indexes through v.
func Get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k < 0 || k >= len(l) {
				return nil
			}
			v = l[k]
		default:
			return nil
		}
	}
	return v
}

// String is Get for a string leaf ("" when absent).
func String(v any, path ...any) string {
	s, _ := Get(v, path...).(string)
	return s
}

// Bool is Get for a bool leaf; the provider's "true"/"false" strings count.
func Bool(v any, path ...any) bool {
	switch b := Get(v, path...).(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}

// Number is Get for a numeric leaf.
func Number(v any, path ...any) (float64, bool) {
	switch n := Get(v, path...).(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	}
	return 0, false
}

// List is Get for a list (nil when absent).
func List(v any, path ...any) []any {
	l, _ := Get(v, path...).([]any)
	return l
}

// bucketCompanions returns, per bucket id, the companion resources of typ
// whose "bucket" input names it.
func bucketCompanions(rs []Resource, typ string) map[string][]Resource {
	out := map[string][]Resource{}
	for _, r := range ofType(rs, typ) {
		b := String(r.Inputs, "bucket")
		out[b] = append(out[b], r)
	}
	return out
}

func bucketsBlockPublicAccess(rs []Resource) []Violation {
	var out []Violation
	blocks := bucketCompanions(rs, TypePublicAccessBlock)
	for _, b := range ofType(rs, TypeBucket) {
		ok := false
		for _, pab := range blocks[b.ID] {
			if Bool(pab.Inputs, "blockPublicAcls") && Bool(pab.Inputs, "blockPublicPolicy") &&
				Bool(pab.Inputs, "ignorePublicAcls") && Bool(pab.Inputs, "restrictPublicBuckets") {
				ok = true
			}
		}
		if !ok {
			out = append(out, violation(b, "no public access block with all four settings on"))
		}
	}
	return out
}

func bucketsEncrypted(rs []Resource) []Violation {
	var out []Violation
	configs := bucketCompanions(rs, TypeBucketEncryption)
	for _, b := range ofType(rs, TypeBucket) {
		ok := false
		for _, c := range configs[b.ID] {
			for _, rule := range List(c.Inputs, "rules") {
				switch String(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm") {
				case "AES256", "aws:kms", "aws:kms:dsse":
					ok = true
				}
			}
		}
		if !ok {
			out = append(out, violation(b, "no default server-side encryption"))
		}
	}
	return out
}

func bucketsOwnerEnforced(rs []Resource) []Violation {
	var out []Violation
	controls := bucketCompanions(rs, TypeBucketOwnership)
	for _, b := range ofType(rs, TypeBucket) {
		ok := false
		for _, c := range controls[b.ID] {
			if String(c.Inputs, "rule", "objectOwnership") == "BucketOwnerEnforced" {
				ok = true
			}
		}
		if !ok {
			out = append(out, violation(b, "object ownership is not BucketOwnerEnforced (ACLs stay enabled)"))
		}
		if len(List(b.Inputs, "grants")) > 0 || String(b.Inputs, "acl") != "" {
			out = append(out, violation(b, "declares ACLs or grants"))
		}
	}
	return out
}

func queuesEncrypted(rs []Resource) []Violation {
	var out []Violation
	for _, q := range ofType(rs, TypeQueue) {
		if !Bool(q.Inputs, "sqsManagedSseEnabled") && String(q.Inputs, "kmsMasterKeyId") == "" {
			out = append(out, violation(q, "no server-side encryption"))
		}
	}
	return out
}

func imdsv2Required(rs []Resource) []Violation {
	var out []Violation
	for _, r := range append(ofType(rs, TypeInstance), ofType(rs, TypeLaunchTemplate)...) {
		if String(r.Inputs, "metadataOptions", "httpTokens") != "required" {
			out = append(out, violation(r, "metadataOptions.httpTokens is not \"required\" (IMDSv1 allowed)"))
		}
		if hops, ok := Number(r.Inputs, "metadataOptions", "httpPutResponseHopLimit"); !ok || hops < 1 || hops > 2 {
			out = append(out, violation(r, "metadataOptions.httpPutResponseHopLimit must be set to 1 or 2"))
		}
	}
	return out
}

func volumesEncrypted(rs []Resource) []Violation {
	var out []Violation
	for _, r := range ofType(rs, TypeInstance) {
		if !Bool(r.Inputs, "rootBlockDevice", "encrypted") {
			out = append(out, violation(r, "root volume not encrypted"))
		}
		for i, d := range List(r.Inputs, "ebsBlockDevices") {
			if !Bool(d, "encrypted") {
				out = append(out, violation(r, "EBS volume %d not encrypted", i))
			}
		}
	}
	for _, r := range ofType(rs, TypeLaunchTemplate) {
		mappings := List(r.Inputs, "blockDeviceMappings")
		if len(mappings) == 0 {
			out = append(out, violation(r, "no block device mapping: the root volume would inherit the AMI's (unencrypted) setting"))
		}
		for i, m := range mappings {
			if Get(m, "ebs") != nil && !Bool(m, "ebs", "encrypted") {
				out = append(out, violation(r, "block device %d not encrypted", i))
			}
		}
	}
	return out
}

// portRange reports whether an ingress rule admits TCP port p.
func admitsPort(rule any, p float64) bool {
	proto := String(rule, "protocol")
	if proto == "-1" || proto == "all" {
		return true
	}
	if proto != "tcp" && proto != "6" {
		return false
	}
	from, okf := Number(rule, "fromPort")
	to, okt := Number(rule, "toPort")
	if !okf || !okt {
		return false
	}
	return from <= p && p <= to
}

func noSSH(rs []Resource) []Violation {
	var out []Violation
	for _, sg := range ofType(rs, TypeSecurityGroup) {
		for i, rule := range List(sg.Inputs, "ingress") {
			if admitsPort(rule, 22) {
				out = append(out, violation(sg, "ingress rule %d admits port 22", i))
			}
		}
	}
	for _, r := range ofType(rs, TypeSecurityGroupRule) {
		if String(r.Inputs, "type") == "ingress" && admitsPort(r.Inputs, 22) {
			out = append(out, violation(r, "admits port 22"))
		}
	}
	for _, r := range ofType(rs, TypeIngressRule) {
		rule := map[string]any{"protocol": String(r.Inputs, "ipProtocol"), "fromPort": Get(r.Inputs, "fromPort"), "toPort": Get(r.Inputs, "toPort")}
		if admitsPort(rule, 22) {
			out = append(out, violation(r, "admits port 22"))
		}
	}
	for _, r := range append(ofType(rs, TypeInstance), ofType(rs, TypeLaunchTemplate)...) {
		if String(r.Inputs, "keyName") != "" {
			out = append(out, violation(r, "has an SSH key pair; use Session Manager"))
		}
	}
	for _, r := range ofType(rs, TypeKeyPair) {
		out = append(out, violation(r, "declares an SSH key pair; use Session Manager"))
	}
	return out
}

// policyInputs names, per type, the inputs holding policy documents.
var policyInputs = map[string][]string{
	TypeRole:         {"assumeRolePolicy"},
	TypeRolePolicy:   {"policy"},
	TypeIAMPolicy:    {"policy"},
	TypeBucketPolicy: {"policy"},
	TypeQueuePolicy:  {"policy"},
	TypeQueue:        {"policy"},
	TypeBucket:       {"policy"},
}

// StatementProblems lists what is wrong with one statement. Deny statements
// may be broad; Allow statements must name every action, never use
// NotAction, and use Resource "*" only for WildcardResourceActions.
func StatementProblems(s Statement) []string {
	if s.Effect == "Deny" {
		return nil
	}
	var out []string
	if s.Effect != "Allow" {
		out = append(out, fmt.Sprintf("effect %q is neither Allow nor Deny", s.Effect))
	}
	if len(s.NotAction) > 0 {
		out = append(out, "Allow with NotAction grants everything else")
	}
	for _, a := range s.Action {
		if strings.Contains(a, "*") || strings.Contains(a, "?") {
			out = append(out, fmt.Sprintf("wildcard action %q", a))
		}
	}
	if slices.Contains(s.Resource, "*") {
		for _, a := range s.Action {
			if !slices.Contains(WildcardResourceActions, a) {
				out = append(out, fmt.Sprintf("action %q on resource \"*\"", a))
			}
		}
	}
	if len(s.Resource) == 0 && len(s.Principal) == 0 {
		out = append(out, "Allow without Resource or Principal")
	}
	return out
}

func iamLeastPrivilege(rs []Resource) []Violation {
	var out []Violation
	types := make([]string, 0, len(policyInputs))
	for t := range policyInputs {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		for _, r := range ofType(rs, t) {
			for _, key := range policyInputs[t] {
				raw := String(r.Inputs, key)
				if raw == "" {
					continue
				}
				doc, err := ParseDocument(raw)
				if err != nil {
					out = append(out, violation(r, "%s: %v", key, err))
					continue
				}
				for i, s := range doc.Statement {
					for _, p := range StatementProblems(s) {
						out = append(out, violation(r, "%s statement %d (%s): %s", key, i, s.Sid, p))
					}
				}
			}
			for i, inline := range List(r.Inputs, "inlinePolicies") {
				if raw := String(inline, "policy"); raw != "" {
					doc, err := ParseDocument(raw)
					if err != nil {
						out = append(out, violation(r, "inline policy %d: %v", i, err))
						continue
					}
					for j, s := range doc.Statement {
						for _, p := range StatementProblems(s) {
							out = append(out, violation(r, "inline policy %d statement %d: %s", i, j, p))
						}
					}
				}
			}
		}
	}
	return out
}

func managedPoliciesAllowed(rs []Resource) []Violation {
	var out []Violation
	for _, r := range ofType(rs, TypeRolePolicyAttach) {
		if arn := String(r.Inputs, "policyArn"); !slices.Contains(ManagedPolicies, arn) {
			out = append(out, violation(r, "attaches managed policy %q, which is not in the allow list", arn))
		}
	}
	for _, r := range ofType(rs, TypeRole) {
		for _, a := range List(r.Inputs, "managedPolicyArns") {
			if arn, _ := a.(string); !slices.Contains(ManagedPolicies, arn) {
				out = append(out, violation(r, "carries managed policy %q, which is not in the allow list", arn))
			}
		}
	}
	return out
}

func scalerOwnsDesiredCapacity(rs []Resource) []Violation {
	var out []Violation
	for _, g := range ofType(rs, TypeGroup) {
		if !slices.Contains(g.IgnoreChanges, "desiredCapacity") {
			out = append(out, violation(g, "Pulumi would reset the scaler's desired capacity: ignoreChanges lacks desiredCapacity"))
		}
	}
	return out
}

func customResourcesParented(rs []Resource) []Violation {
	var out []Violation
	for _, r := range rs {
		if !r.Custom || strings.HasPrefix(r.Type, "pulumi:providers:") {
			continue
		}
		if r.Parent == "" || strings.Contains(r.Parent, "::"+TypeStack+"::") {
			out = append(out, violation(r, "has no component parent"))
		}
	}
	return out
}
