package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Config is everything a stack can set, under the "nimbus:" namespace. Every
// field has a default (DefaultConfig) except AllowedCidrs, which the operator
// must choose. README.md ("Deploy on AWS") documents each key.
type Config struct {
	// AmiID is a baked Nimbus AMI. Empty means "bake one": Pulumi runs
	// ami/build.sh (Packer) and rebuilds when runtime/ or ami/ change.
	AmiID string
	// WebInstanceType runs the web front end and the scaler.
	WebInstanceType string
	// WorkerInstanceType runs one worker each.
	WorkerInstanceType string
	// MinWorkers and MaxWorkers bound the worker group; the scaler moves the
	// desired capacity between them.
	MinWorkers int
	MaxWorkers int
	// AllowedCidrs may reach the web tier's HTTP port. Nothing else may.
	AllowedCidrs []string
	// HTTPPort is the web tier's listen port.
	HTTPPort int
	// UseDefaultVpc places everything in the account's default VPC instead
	// of a new one.
	UseDefaultVpc bool
	// VpcCidr is the new VPC's address range (ignored with UseDefaultVpc).
	VpcCidr string
	// VisibilityTimeoutSeconds is the input queue's visibility timeout: the
	// worst-case time to classify one image. The drain hook's heartbeat and
	// the worker's stop timeout are derived from it.
	VisibilityTimeoutSeconds int
	// MaxReceiveCount is how many receives a job gets before it moves to
	// the dead-letter queue.
	MaxReceiveCount int
	// LifecycleHookName names the termination hook workers drain under.
	LifecycleHookName string
	// RetentionDays expires objects in both buckets; 0 keeps them.
	RetentionDays int
	// ForceDestroy lets `pulumi destroy` delete buckets that still hold
	// objects.
	ForceDestroy bool
	// WarmPool keeps WarmPoolMinSize stopped, pre-initialised workers.
	WarmPool        bool
	WarmPoolMinSize int
	// Model and ModelSHA256 select another ONNX model than the baked one.
	Model       string
	ModelSHA256 string
	// RootVolumeGiB sizes every instance's encrypted gp3 root volume.
	RootVolumeGiB int

	// RepoRoot is the directory holding Pulumi.yaml, runtime/ and ami/. It
	// is not a config key: main sets it from the Pulumi context.
	RepoRoot string
}

// DefaultConfig returns the defaults, which Pulumi.dev.yaml spells out.
func DefaultConfig() Config {
	return Config{
		WebInstanceType:          "t3.small",
		WorkerInstanceType:       "c7i.large",
		MinWorkers:               0,
		MaxWorkers:               20,
		HTTPPort:                 8080,
		VpcCidr:                  "10.42.0.0/16",
		VisibilityTimeoutSeconds: 120,
		MaxReceiveCount:          3,
		LifecycleHookName:        "nimbus-drain",
		RetentionDays:            7,
		ForceDestroy:             true,
		WarmPoolMinSize:          1,
		RootVolumeGiB:            16,
	}
}

// ConfigNamespace is the prefix of every key in Pulumi.<stack>.yaml.
const ConfigNamespace = "nimbus"

// ParseConfig reads every key through lookup (key without namespace) over
// DefaultConfig, and validates the result. Problems are joined, not
// reported one at a time.
func ParseConfig(lookup func(key string) (string, bool)) (Config, error) {
	c := DefaultConfig()
	var errs []error
	str := func(key string, dst *string) {
		if v, ok := lookup(key); ok {
			*dst = strings.TrimSpace(v)
		}
	}
	integer := func(key string, dst *int) {
		if v, ok := lookup(key); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%s: %q is not an integer", ConfigNamespace, key, v))
				return
			}
			*dst = n
		}
	}
	boolean := func(key string, dst *bool) {
		if v, ok := lookup(key); ok {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%s: %q is not true or false", ConfigNamespace, key, v))
				return
			}
			*dst = b
		}
	}
	list := func(key string, dst *[]string) {
		v, ok := lookup(key)
		if !ok {
			return
		}
		var l []string
		if err := json.Unmarshal([]byte(v), &l); err != nil {
			errs = append(errs, fmt.Errorf("%s:%s: want a list of strings: %w", ConfigNamespace, key, err))
			return
		}
		*dst = l
	}

	str("amiId", &c.AmiID)
	str("webInstanceType", &c.WebInstanceType)
	str("workerInstanceType", &c.WorkerInstanceType)
	integer("minWorkers", &c.MinWorkers)
	integer("maxWorkers", &c.MaxWorkers)
	list("allowedCidrs", &c.AllowedCidrs)
	integer("httpPort", &c.HTTPPort)
	boolean("useDefaultVpc", &c.UseDefaultVpc)
	str("vpcCidr", &c.VpcCidr)
	integer("visibilityTimeoutSeconds", &c.VisibilityTimeoutSeconds)
	integer("maxReceiveCount", &c.MaxReceiveCount)
	str("lifecycleHookName", &c.LifecycleHookName)
	integer("retentionDays", &c.RetentionDays)
	boolean("forceDestroy", &c.ForceDestroy)
	boolean("warmPool", &c.WarmPool)
	integer("warmPoolMinSize", &c.WarmPoolMinSize)
	str("model", &c.Model)
	str("modelSha256", &c.ModelSHA256)
	integer("rootVolumeGiB", &c.RootVolumeGiB)

	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

var (
	amiIDPattern    = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	hookNamePattern = regexp.MustCompile(`^[A-Za-z0-9\-_/]{1,255}$`)
	sha256Pattern   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	envKeyPattern   = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s:%s: %s", ConfigNamespace, key, fmt.Sprintf(format, a...)))
	}
	if c.AmiID != "" && !amiIDPattern.MatchString(c.AmiID) {
		bad("amiId", "%q is not an AMI id (ami-…); leave it empty to bake one", c.AmiID)
	}
	if c.WebInstanceType == "" {
		bad("webInstanceType", "must not be empty")
	}
	if c.WorkerInstanceType == "" {
		bad("workerInstanceType", "must not be empty")
	}
	if c.MinWorkers < 0 {
		bad("minWorkers", "must be 0 or more, got %d", c.MinWorkers)
	}
	if c.MaxWorkers < 1 || c.MaxWorkers < c.MinWorkers {
		bad("maxWorkers", "must be at least 1 and at least minWorkers (%d), got %d", c.MinWorkers, c.MaxWorkers)
	}
	if len(c.AllowedCidrs) == 0 {
		bad("allowedCidrs", "list the client networks that may reach the web tier, e.g. [\"203.0.113.7/32\"]")
	}
	for _, cidr := range c.AllowedCidrs {
		p, err := netip.ParsePrefix(cidr)
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			bad("allowedCidrs", "%q is not an IPv4 network in CIDR form", cidr)
		}
	}
	if c.HTTPPort < 1 || c.HTTPPort > 65535 || c.HTTPPort == 22 {
		bad("httpPort", "must be a TCP port other than 22, got %d", c.HTTPPort)
	}
	if !c.UseDefaultVpc {
		if p, err := netip.ParsePrefix(c.VpcCidr); err != nil || !p.Addr().Is4() || p.Bits() < 16 || p.Bits() > 24 {
			bad("vpcCidr", "%q must be an IPv4 CIDR between /16 and /24", c.VpcCidr)
		}
	}
	// SQS allows 0–43200 s; the drain must fit in the hook's heartbeat and
	// the worker's stop timeout, so keep it to what a drain can wait for.
	if c.VisibilityTimeoutSeconds < 30 || c.VisibilityTimeoutSeconds > 3600 {
		bad("visibilityTimeoutSeconds", "must be between 30 and 3600, got %d", c.VisibilityTimeoutSeconds)
	}
	if c.MaxReceiveCount < 1 || c.MaxReceiveCount > 1000 {
		bad("maxReceiveCount", "must be between 1 and 1000, got %d", c.MaxReceiveCount)
	}
	if !hookNamePattern.MatchString(c.LifecycleHookName) {
		bad("lifecycleHookName", "%q is not a valid lifecycle hook name", c.LifecycleHookName)
	}
	if c.RetentionDays < 0 {
		bad("retentionDays", "must be 0 (keep forever) or more, got %d", c.RetentionDays)
	}
	if c.WarmPool && (c.WarmPoolMinSize < 0 || c.WarmPoolMinSize > c.MaxWorkers) {
		bad("warmPoolMinSize", "must be between 0 and maxWorkers (%d), got %d", c.MaxWorkers, c.WarmPoolMinSize)
	}
	if (c.Model == "") != (c.ModelSHA256 == "") {
		bad("modelSha256", "set model and modelSha256 together")
	}
	if c.ModelSHA256 != "" && !sha256Pattern.MatchString(c.ModelSHA256) {
		bad("modelSha256", "must be 64 lowercase hex digits")
	}
	if strings.ContainsAny(c.Model, "\n\r\"'\\$`") {
		bad("model", "must not contain quotes, backslashes, dollars or newlines")
	}
	if c.RootVolumeGiB < 8 || c.RootVolumeGiB > 1024 {
		bad("rootVolumeGiB", "must be between 8 and 1024, got %d", c.RootVolumeGiB)
	}
	return errors.Join(errs...)
}

// drainSeconds is how long a terminating worker may take to drain: one
// visibility timeout for the job in hand plus a margin to finish uploading
// and complete the lifecycle action.
func (c Config) drainSeconds() int { return c.VisibilityTimeoutSeconds + 60 }
