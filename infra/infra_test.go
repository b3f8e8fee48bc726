package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nimbus-ml/nimbus/infra/policy"
)

// TestPolicies runs every invariant in package policy over whole stacks in
// each shape the configuration allows, so a resource added later is
// checked without a test of its own.
func TestPolicies(t *testing.T) {
	bake := testConfig()
	bake.AmiID = ""
	bake.RepoRoot = fakeRepo(t)
	defaultVpc := testConfig()
	defaultVpc.UseDefaultVpc = true
	warm := testConfig()
	warm.WarmPool = true
	warm.RetentionDays = 0
	warm.Model = "https://models.example.org/resnet50.onnx"
	warm.ModelSHA256 = strings.Repeat("ab", 32)

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{name: "defaults", cfg: testConfig()},
		{name: "bake", cfg: bake},
		{name: "default vpc", cfg: defaultVpc},
		{name: "warm pool, no expiry, own model", cfg: warm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustDeploy(t, tc.cfg)
			// The checks look resources up by type token: make sure each
			// kind they guard is really there, so none passes vacuously.
			for _, typ := range []string{
				policy.TypeBucket, policy.TypePublicAccessBlock, policy.TypeBucketEncryption,
				policy.TypeBucketOwnership, policy.TypeBucketPolicy, policy.TypeQueue,
				policy.TypeInstance, policy.TypeLaunchTemplate, policy.TypeSecurityGroup,
				policy.TypeRole, policy.TypeRolePolicy, policy.TypeRolePolicyAttach, policy.TypeGroup,
			} {
				if len(s.ofType(typ)) == 0 {
					t.Errorf("no %s registered", typ)
				}
			}
			for _, v := range policy.Run(s.resources) {
				t.Error(v)
			}
		})
	}
}

func TestBucketsArePrivateAndEncrypted(t *testing.T) {
	s := mustDeploy(t, testConfig())
	buckets := s.ofType(policy.TypeBucket)
	if len(buckets) != 2 {
		t.Fatalf("want 2 buckets, got %d", len(buckets))
	}
	for _, b := range buckets {
		if !policy.Bool(b.Inputs, "forceDestroy") {
			t.Errorf("%s: forceDestroy is off by default", b.Name)
		}
		var pab, sse, owner, expiry int
		for _, r := range s.resources {
			if policy.String(r.Inputs, "bucket") != b.ID {
				continue
			}
			switch r.Type {
			case policy.TypePublicAccessBlock:
				for _, k := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
					if !policy.Bool(r.Inputs, k) {
						t.Errorf("%s: %s is off", b.Name, k)
					}
				}
				pab++
			case policy.TypeBucketEncryption:
				if got := policy.String(r.Inputs, "rules", 0, "applyServerSideEncryptionByDefault", "sseAlgorithm"); got != "AES256" {
					t.Errorf("%s: sseAlgorithm %q", b.Name, got)
				}
				sse++
			case policy.TypeBucketOwnership:
				owner++
			case "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2":
				if days, _ := policy.Number(r.Inputs, "rules", 0, "expiration", "days"); days != 7 {
					t.Errorf("%s: expiry after %v days, want 7", b.Name, days)
				}
				expiry++
			}
		}
		if pab != 1 || sse != 1 || owner != 1 || expiry != 1 {
			t.Errorf("%s: %d public access blocks, %d encryption configs, %d ownership controls, %d lifecycle configs; want one each", b.Name, pab, sse, owner, expiry)
		}
	}
}

func TestRetentionZeroKeepsObjects(t *testing.T) {
	cfg := testConfig()
	cfg.RetentionDays = 0
	cfg.ForceDestroy = false
	s := mustDeploy(t, cfg)
	if n := len(s.ofType("aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2")); n != 0 {
		t.Errorf("%d lifecycle configurations with retentionDays 0", n)
	}
	for _, b := range s.ofType(policy.TypeBucket) {
		if policy.Bool(b.Inputs, "forceDestroy") {
			t.Errorf("%s: forceDestroy on although configured off", b.Name)
		}
	}
}

func TestIMDSv2Required(t *testing.T) {
	s := mustDeploy(t, testConfig())
	lt := s.one(t, policy.TypeLaunchTemplate, "worker")
	web := s.one(t, policy.TypeInstance, "web")
	for _, r := range []policy.Resource{lt, web} {
		if got := policy.String(r.Inputs, "metadataOptions", "httpTokens"); got != "required" {
			t.Errorf("%s: httpTokens %q", r.Name, got)
		}
		if got, _ := policy.Number(r.Inputs, "metadataOptions", "httpPutResponseHopLimit"); got != 1 {
			t.Errorf("%s: hop limit %v", r.Name, got)
		}
	}
	if got := policy.String(lt.Inputs, "blockDeviceMappings", 0, "ebs", "encrypted"); got != "true" {
		t.Errorf("worker root volume encrypted = %q", got)
	}
	if got := policy.String(lt.Inputs, "blockDeviceMappings", 0, "ebs", "volumeType"); got != "gp3" {
		t.Errorf("worker root volume type %q", got)
	}
	if got := policy.String(lt.Inputs, "imageId"); got != testAMI {
		t.Errorf("worker AMI %q, want %q", got, testAMI)
	}
}

func TestRedrivePointsAtDeadLetterQueue(t *testing.T) {
	cfg := testConfig()
	cfg.MaxReceiveCount = 5
	s := mustDeploy(t, cfg)
	input := s.one(t, policy.TypeQueue, "-input")
	dlq := s.one(t, policy.TypeQueue, "-dead-letter")
	output := s.one(t, policy.TypeQueue, "-output")

	var redrive struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     int    `json:"maxReceiveCount"`
	}
	mustJSON(t, policy.String(input.Inputs, "redrivePolicy"), &redrive)
	if want := await[string](t, s.Queues.DeadLetter.Arn); redrive.DeadLetterTargetArn != want {
		t.Errorf("redrive target %q, want the dead-letter queue %q", redrive.DeadLetterTargetArn, want)
	}
	if redrive.MaxReceiveCount != 5 {
		t.Errorf("maxReceiveCount %d, want 5", redrive.MaxReceiveCount)
	}
	for _, q := range []policy.Resource{input, output, dlq} {
		if wait, _ := policy.Number(q.Inputs, "receiveWaitTimeSeconds"); wait != 20 {
			t.Errorf("%s: receive wait %v s, want long polling (20)", q.Name, wait)
		}
		if size, _ := policy.Number(q.Inputs, "maxMessageSize"); size > 16*1024 {
			t.Errorf("%s: max message size %v: messages are claim checks", q.Name, size)
		}
	}
	if v, _ := policy.Number(input.Inputs, "visibilityTimeoutSeconds"); v != 120 {
		t.Errorf("input visibility timeout %v, want 120", v)
	}
	if size, _ := policy.Number(input.Inputs, "maxMessageSize"); size != 4096 {
		t.Errorf("input max message size %v, want 4096", size)
	}
}

func TestScalerOwnsWorkerGroup(t *testing.T) {
	s := mustDeploy(t, testConfig())
	g := s.one(t, policy.TypeGroup, "worker")
	if max, _ := policy.Number(g.Inputs, "maxSize"); max != 20 {
		t.Errorf("maxSize %v, want 20", max)
	}
	if min, _ := policy.Number(g.Inputs, "minSize"); min != 0 {
		t.Errorf("minSize %v, want 0", min)
	}
	if d, _ := policy.Number(g.Inputs, "desiredCapacity"); d != 0 {
		t.Errorf("initial desiredCapacity %v, want 0", d)
	}
	if !slices.Contains(g.IgnoreChanges, "desiredCapacity") {
		t.Errorf("ignoreChanges %v lacks desiredCapacity", g.IgnoreChanges)
	}
	if got := policy.String(g.Inputs, "name"); got != "nimbus-test-workers" {
		t.Errorf("group name %q", got)
	}
	if g.Inputs["warmPool"] != nil {
		t.Errorf("warm pool declared although off: %v", g.Inputs["warmPool"])
	}
	hook := s.one(t, "aws:autoscaling/lifecycleHook:LifecycleHook", "drain")
	for k, want := range map[string]string{
		"name":                 "nimbus-drain",
		"autoscalingGroupName": "nimbus-test-workers",
		"lifecycleTransition":  "autoscaling:EC2_INSTANCE_TERMINATING",
		"defaultResult":        "CONTINUE",
	} {
		if got := policy.String(hook.Inputs, k); got != want {
			t.Errorf("hook %s = %q, want %q", k, got, want)
		}
	}
	if hb, _ := policy.Number(hook.Inputs, "heartbeatTimeout"); hb < 120 || hb > 300 {
		t.Errorf("hook heartbeat %v s, want about the visibility timeout (120 s)", hb)
	}
}

func TestWarmPool(t *testing.T) {
	cfg := testConfig()
	cfg.WarmPool = true
	cfg.WarmPoolMinSize = 2
	s := mustDeploy(t, cfg)
	g := s.one(t, policy.TypeGroup, "worker")
	if got := policy.String(g.Inputs, "warmPool", "poolState"); got != "Stopped" {
		t.Errorf("warm pool state %q", got)
	}
	if n, _ := policy.Number(g.Inputs, "warmPool", "minSize"); n != 2 {
		t.Errorf("warm pool min size %v", n)
	}
}

func TestIngress(t *testing.T) {
	cfg := testConfig()
	cfg.HTTPPort = 8443
	s := mustDeploy(t, cfg)
	web := s.one(t, policy.TypeSecurityGroup, "-web")
	rules := policy.List(web.Inputs, "ingress")
	if len(rules) != 1 {
		t.Fatalf("web ingress has %d rules, want 1: %v", len(rules), rules)
	}
	r := rules[0]
	from, _ := policy.Number(r, "fromPort")
	to, _ := policy.Number(r, "toPort")
	if policy.String(r, "protocol") != "tcp" || from != 8443 || to != 8443 {
		t.Errorf("web ingress %v, want tcp 8443 only", r)
	}
	var cidrs []string
	for _, c := range policy.List(r, "cidrBlocks") {
		cidrs = append(cidrs, c.(string))
	}
	if !slices.Equal(cidrs, cfg.AllowedCidrs) {
		t.Errorf("web ingress from %v, want %v", cidrs, cfg.AllowedCidrs)
	}
	if v6 := policy.List(r, "ipv6CidrBlocks"); len(v6) != 0 {
		t.Errorf("web ingress from IPv6 %v", v6)
	}
	worker := s.one(t, policy.TypeSecurityGroup, "-worker")
	if rules := policy.List(worker.Inputs, "ingress"); len(rules) != 0 {
		t.Errorf("worker ingress %v, want none", rules)
	}
	if got := await[string](t, s.Web.Endpoint); got != "http://203.0.113.7:8443" {
		t.Errorf("endpoint %q", got)
	}
}

func TestNetwork(t *testing.T) {
	s := mustDeploy(t, testConfig())
	subnets := s.ofType("aws:ec2/subnet:Subnet")
	if len(subnets) != 2 {
		t.Fatalf("%d subnets, want 2", len(subnets))
	}
	zones := map[string]bool{}
	for _, sn := range subnets {
		zones[policy.String(sn.Inputs, "availabilityZone")] = true
	}
	if len(zones) != 2 {
		t.Errorf("subnets share availability zones: %v", zones)
	}
	ep := s.one(t, "aws:ec2/vpcEndpoint:VpcEndpoint", "-s3")
	if policy.String(ep.Inputs, "serviceName") != "com.amazonaws.us-east-1.s3" || policy.String(ep.Inputs, "vpcEndpointType") != "Gateway" {
		t.Errorf("S3 endpoint %v", ep.Inputs)
	}

	cfg := testConfig()
	cfg.UseDefaultVpc = true
	s = mustDeploy(t, cfg)
	if n := len(s.ofType("aws:ec2/vpc:Vpc")); n != 0 {
		t.Errorf("%d VPCs declared with useDefaultVpc", n)
	}
	if got := policy.String(s.one(t, policy.TypeSecurityGroup, "-web").Inputs, "vpcId"); got != "vpc-default" {
		t.Errorf("web security group in %q, want the default VPC", got)
	}
}

// statements returns the role policy's statements by Sid.
func statements(t *testing.T, r policy.Resource) map[string]policy.Statement {
	t.Helper()
	doc, err := policy.ParseDocument(policy.String(r.Inputs, "policy"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]policy.Statement{}
	for _, s := range doc.Statement {
		out[s.Sid] = s
	}
	return out
}

func TestIAMIsLeastPrivilege(t *testing.T) {
	s := mustDeploy(t, testConfig())
	input := await[string](t, s.Queues.Input.Arn)
	output := await[string](t, s.Queues.Output.Arn)
	dlq := await[string](t, s.Queues.DeadLetter.Arn)
	inBucket := await[string](t, s.Storage.Input.Arn)
	outBucket := await[string](t, s.Storage.Output.Arn)
	group := await[string](t, s.Workers.Group.Arn)

	// No "*" action, and no wildcard action on a wildcard resource, in any
	// document anywhere (Allow or Deny).
	for _, r := range s.resources {
		for _, key := range []string{"policy", "assumeRolePolicy"} {
			raw := policy.String(r.Inputs, key)
			if raw == "" {
				continue
			}
			doc, err := policy.ParseDocument(raw)
			if err != nil {
				t.Fatalf("%s %s: %v", r.Type, r.Name, err)
			}
			for _, st := range doc.Statement {
				for _, a := range st.Action {
					if a == "*" || a == "*:*" {
						t.Errorf("%s %s: action %q", r.Type, r.Name, a)
					}
					if strings.Contains(a, "*") && slices.Contains(st.Resource, "*") {
						t.Errorf("%s %s: wildcard action %q on resource *", r.Type, r.Name, a)
					}
				}
			}
		}
	}

	type want struct {
		actions   []string
		resources []string
	}
	check := func(role string, r policy.Resource, wants map[string]want) {
		t.Helper()
		got := statements(t, r)
		if len(got) != len(wants) {
			t.Errorf("%s: %d statements, want %d", role, len(got), len(wants))
		}
		for sid, w := range wants {
			st, ok := got[sid]
			if !ok {
				t.Errorf("%s: no statement %s", role, sid)
				continue
			}
			if st.Effect != "Allow" || !slices.Equal(st.Action, w.actions) || !slices.Equal(st.Resource, w.resources) {
				t.Errorf("%s %s: %s %v on %v, want Allow %v on %v", role, sid, st.Effect, st.Action, st.Resource, w.actions, w.resources)
			}
		}
	}
	check("web", s.one(t, policy.TypeRolePolicy, "-web"), map[string]want{
		"SubmitJobs":        {[]string{"sqs:SendMessage", "sqs:GetQueueAttributes"}, []string{input}},
		"ReadResults":       {[]string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}, []string{output}},
		"WatchDeadLetters":  {[]string{"sqs:GetQueueAttributes"}, []string{dlq}},
		"StoreUploads":      {[]string{"s3:PutObject"}, []string{inBucket + "/*"}},
		"ReadResultObjects": {[]string{"s3:GetObject"}, []string{outBucket + "/*"}},
		"ListResults":       {[]string{"s3:ListBucket"}, []string{outBucket}},
		"ScaleWorkers":      {[]string{"autoscaling:SetDesiredCapacity"}, []string{group}},
		"DescribeWorkers":   {[]string{"autoscaling:DescribeAutoScalingGroups"}, []string{"*"}},
	})
	check("worker", s.one(t, policy.TypeRolePolicy, "-worker"), map[string]want{
		"ConsumeJobs":    {[]string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}, []string{input, dlq}},
		"PublishResults": {[]string{"sqs:SendMessage"}, []string{output}},
		"ReadUploads":    {[]string{"s3:GetObject"}, []string{inBucket + "/*"}},
		"WriteResults":   {[]string{"s3:PutObject", "s3:GetObject"}, []string{outBucket + "/*"}},
		"ListResults":    {[]string{"s3:ListBucket"}, []string{outBucket}},
		"Drain":          {[]string{"autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"}, []string{group}},
	})

	attachments := s.ofType(policy.TypeRolePolicyAttach)
	if len(attachments) != 2 {
		t.Fatalf("%d managed policy attachments, want 2 (SSM core per role)", len(attachments))
	}
	for _, a := range attachments {
		if got := policy.String(a.Inputs, "policyArn"); got != "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" {
			t.Errorf("%s attaches %q", a.Name, got)
		}
	}
}

func TestUserDataNamesQueuesAndBuckets(t *testing.T) {
	s := mustDeploy(t, testConfig())
	want := map[string]string{
		"NIMBUS_BACKEND":           "aws",
		"NIMBUS_REGION":            testRegion,
		"AWS_REGION":               testRegion,
		"NIMBUS_INPUT_QUEUE":       await[string](t, s.Queues.Input.Url),
		"NIMBUS_OUTPUT_QUEUE":      await[string](t, s.Queues.Output.Url),
		"NIMBUS_DEAD_LETTER_QUEUE": await[string](t, s.Queues.DeadLetter.Url),
		"NIMBUS_INPUT_BUCKET":      await[string](t, s.Storage.Input.Bucket),
		"NIMBUS_OUTPUT_BUCKET":     await[string](t, s.Storage.Output.Bucket),
		"NIMBUS_GROUP":             "nimbus-test-workers",
		"NIMBUS_LIFECYCLE_HOOK":    "nimbus-drain",
		"NIMBUS_ADDR":              ":8080",
		"NIMBUS_MIN_WORKERS":       "0",
		"NIMBUS_MAX_WORKERS":       "20",
		"NIMBUS_ASSETS":            "/opt/nimbus/assets",
	}
	lt := s.one(t, policy.TypeLaunchTemplate, "worker")
	raw, err := base64.StdEncoding.DecodeString(policy.String(lt.Inputs, "userData"))
	if err != nil {
		t.Fatalf("worker user data is not base64: %v", err)
	}
	web := s.one(t, policy.TypeInstance, "web")
	for _, tc := range []struct {
		role, script string
		enabled      []string
	}{
		{"worker", string(raw), []string{"nimbus-worker.service"}},
		{"web", policy.String(web.Inputs, "userData"), []string{"nimbus-web.service", "nimbus-scaler.service"}},
	} {
		env := envFile(t, tc.script)
		want["NIMBUS_ROLE"] = tc.role
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s: %s=%q, want %q", tc.role, k, env[k], v)
			}
		}
		for k := range env {
			if strings.Contains(strings.ToUpper(k), "SECRET") || strings.Contains(k, "KEY") && k != "NIMBUS_ASSETS" {
				t.Errorf("%s: user data carries %s", tc.role, k)
			}
		}
		if !strings.Contains(tc.script, "systemctl enable --now "+strings.Join(tc.enabled, " ")) {
			t.Errorf("%s user data does not enable %v:\n%s", tc.role, tc.enabled, tc.script)
		}
	}
	if !strings.Contains(string(raw), "TimeoutStopSec=180") {
		t.Errorf("worker user data does not size the stop timeout to the drain:\n%s", raw)
	}
}

// envFile extracts /etc/nimbus/env from a user data script.
func envFile(t *testing.T, script string) map[string]string {
	t.Helper()
	_, rest, ok := strings.Cut(script, "cat > /etc/nimbus/env <<'NIMBUS_ENV'\n")
	body, _, ok2 := strings.Cut(rest, "\nNIMBUS_ENV\n")
	if !ok || !ok2 {
		t.Fatalf("no /etc/nimbus/env in user data:\n%s", script)
	}
	env := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	return env
}

func TestUserDataRejectsUnsafeValues(t *testing.T) {
	for _, v := range []string{"a\nB=c", "$(reboot)", "it's"} {
		if _, err := (UserData{Role: "web", Units: []string{"x.service"}, Env: map[string]string{"NIMBUS_MODEL": v}}).Render(); err == nil {
			t.Errorf("value %q accepted", v)
		}
	}
}

// fakeRepo makes a minimal repository for the bake path.
func fakeRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for path, content := range map[string]string{
		"go.mod":                       "module example\n",
		"go.sum":                       "",
		"runtime/nimbus.go":            "package nimbus\n",
		"runtime/nimbus_test.go":       "package nimbus\n",
		"ami/nimbus.pkr.hcl":           "# template\n",
		"ami/build/manifest.json":      "{}",
		"ami/build/assets/labels.json": "[]",
	} {
		p := filepath.Join(root, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestBakeWhenNoAmiConfigured(t *testing.T) {
	cfg := testConfig()
	cfg.AmiID = ""
	cfg.RepoRoot = fakeRepo(t)
	s := mustDeploy(t, cfg)
	cmd := s.one(t, "command:local:Command", "-bake")
	hash, err := SourceHash(cfg.RepoRoot, BakeSources)
	if err != nil {
		t.Fatal(err)
	}
	if got := policy.String(cmd.Inputs, "create"); got != "ami/build.sh" {
		t.Errorf("create %q", got)
	}
	if got := policy.String(cmd.Inputs, "delete"); got != "ami/deregister.sh" {
		t.Errorf("delete %q: destroy must remove the AMI and its snapshots", got)
	}
	if got := policy.String(cmd.Inputs, "dir"); got != cfg.RepoRoot {
		t.Errorf("dir %q", got)
	}
	if got := policy.String(cmd.Inputs, "triggers", 0); got != hash {
		t.Errorf("trigger %q, want the source hash %q", got, hash)
	}
	if got := policy.String(cmd.Inputs, "environment", "NIMBUS_SOURCE_HASH"); got != hash {
		t.Errorf("NIMBUS_SOURCE_HASH %q", got)
	}
	if got := policy.String(s.one(t, policy.TypeLaunchTemplate, "worker").Inputs, "imageId"); got != bakedAMI {
		t.Errorf("worker AMI %q, want the manifest's %q", got, bakedAMI)
	}
	if got := policy.String(s.one(t, policy.TypeInstance, "web").Inputs, "ami"); got != bakedAMI {
		t.Errorf("web AMI %q, want the manifest's %q", got, bakedAMI)
	}

	// With an AMI configured there is nothing to bake.
	s = mustDeploy(t, testConfig())
	if n := len(s.ofType("command:local:Command")); n != 0 {
		t.Errorf("%d bake commands with amiId set", n)
	}
}

func TestSourceHash(t *testing.T) {
	root := fakeRepo(t)
	base, err := SourceHash(root, BakeSources)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(path)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hash := func() string {
		t.Helper()
		h, err := SourceHash(root, BakeSources)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	write("ami/build/manifest.json", `{"changed": true}`)
	write("runtime/nimbus_test.go", "package nimbus // changed\n")
	if h := hash(); h != base {
		t.Errorf("build output or tests changed the hash")
	}
	write("runtime/nimbus.go", "package nimbus // changed\n")
	if h := hash(); h == base {
		t.Errorf("a runtime change left the hash unchanged")
	}
	if _, err := SourceHash(filepath.Join(root, "missing"), BakeSources); err == nil {
		t.Errorf("hashing a missing tree succeeded")
	}
}

func TestAMIFromManifest(t *testing.T) {
	for _, tc := range []struct {
		name, manifest, region, want string
	}{
		{name: "last run wins", manifest: testManifest, region: "us-east-1", want: bakedAMI},
		{name: "several regions", manifest: `{"builds":[{"artifact_id":"eu-west-1:ami-0bbbbbbbbbbbbbbbb,us-east-1:ami-0ccccccccccccccc1","packer_run_uuid":"x"}],"last_run_uuid":"x"}`, region: "us-east-1", want: "ami-0ccccccccccccccc1"},
		{name: "other region only", manifest: testManifest, region: "eu-west-1"},
		{name: "not json", manifest: "==> amazon-ebs: done", region: "us-east-1"},
		{name: "no builds", manifest: `{"builds":[]}`, region: "us-east-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AMIFromManifest([]byte(tc.manifest), tc.region)
			if tc.want == "" {
				if err == nil {
					t.Errorf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestSubnetCIDR(t *testing.T) {
	for _, tc := range []struct {
		vpc   string
		index int
		want  string
	}{
		{"10.42.0.0/16", 0, "10.42.0.0/20"},
		{"10.42.0.0/16", 1, "10.42.16.0/20"},
		{"10.42.0.0/24", 1, "10.42.0.16/28"},
	} {
		if got, err := subnetCIDR(tc.vpc, 4, tc.index); err != nil || got != tc.want {
			t.Errorf("subnetCIDR(%s, 4, %d) = %q, %v; want %q", tc.vpc, tc.index, got, err, tc.want)
		}
	}
	if _, err := subnetCIDR("10.0.0.0/26", 4, 0); err == nil {
		t.Errorf("a /30 subnet was carved")
	}
}
