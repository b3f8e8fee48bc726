// Package asgfake is an in-process stand-in for the EC2 Auto Scaling API and
// for instance metadata (IMDSv2), for tests that run the real SDK clients.
//
// Fake speaks the Query protocol (API version 2011-01-01) for the actions
// Nimbus uses: SetDesiredCapacity, DescribeAutoScalingGroups,
// CompleteLifecycleAction and RecordLifecycleActionHeartbeat, with response
// and error shapes as Auto Scaling sends them (ValidationError for unknown
// groups, bounds and lifecycle actions; ScalingActivityInProgress on demand).
// It does not check request signatures.
//
// Its groups behave like small Auto Scaling groups: raising the desired
// capacity launches instances that stay Pending for LaunchDelay and then go
// InService; lowering it terminates pending instances first, then the newest
// in service. With a termination hook, a terminated instance waits in
// Terminating:Wait until CompleteLifecycleAction or the hook's heartbeat
// timeout, and IMDS reports its target lifecycle state as "Terminated"
// meanwhile.
package asgfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Lifecycle states the fake uses (a subset of Auto Scaling's).
const (
	StatePending         = "Pending"
	StateInService       = "InService"
	StateTerminatingWait = "Terminating:Wait"
)

const (
	xmlns          = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
	accountID      = "123456789012"
	region         = "us-east-1"
	defaultTimeout = time.Hour // Auto Scaling's default heartbeat timeout
)

// Options configure a Fake. The zero value is usable.
type Options struct {
	// LaunchDelay keeps new instances Pending this long (default 0: they are
	// InService at the next read).
	LaunchDelay time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// GroupSpec describes a group to create.
type GroupSpec struct {
	Name     string
	Min, Max int
	Desired  int
	// Hook names a termination lifecycle hook; empty means none, so
	// scale-in terminates at once.
	Hook string
	// HeartbeatTimeout is how long an instance waits in Terminating:Wait
	// without a heartbeat (default 1h, as in Auto Scaling).
	HeartbeatTimeout time.Duration
}

// Instance is one instance of a group as last observed.
type Instance struct {
	ID       string
	State    string
	launched time.Time
	deadline time.Time // end of Terminating:Wait
}

// Group is a snapshot of a group's state.
type Group struct {
	GroupSpec
	Instances []Instance
	// Busy makes SetDesiredCapacity fail with ScalingActivityInProgress.
	Busy bool
}

// Call is one request the fake served.
type Call struct {
	Action string
	Params url.Values
}

// Fake is the Auto Scaling API. It is an http.Handler; its methods are safe
// for concurrent use.
type Fake struct {
	opts Options

	mu     sync.Mutex
	groups map[string]*Group
	calls  []Call
	nextID int
}

// New returns a Fake without groups.
func New(opts Options) *Fake {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Fake{opts: opts, groups: map[string]*Group{}}
}

// Start serves h on a loopback port until the test ends and returns its URL.
func Start(tb testing.TB, h http.Handler) string {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// AddGroup creates a group with spec.Desired instances already InService.
func (f *Fake) AddGroup(spec GroupSpec) {
	if spec.HeartbeatTimeout <= 0 {
		spec.HeartbeatTimeout = defaultTimeout
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g := &Group{GroupSpec: spec}
	f.groups[spec.Name] = g
	for range spec.Desired {
		g.Instances = append(g.Instances, Instance{ID: f.newIDLocked(), State: StateInService})
	}
}

// SetBusy makes SetDesiredCapacity on the group fail with
// ScalingActivityInProgress until called again with false.
func (f *Fake) SetBusy(name string, busy bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g, ok := f.groups[name]; ok {
		g.Busy = busy
	}
}

// Group returns a snapshot of the named group.
func (f *Fake) Group(name string) (Group, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.groups[name]
	if !ok {
		return Group{}, false
	}
	f.advanceLocked(g)
	out := *g
	out.Instances = slices.Clone(g.Instances)
	return out, true
}

// Calls returns the requests served so far, oldest first.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *Fake) newIDLocked() string {
	f.nextID++
	return fmt.Sprintf("i-%017x", f.nextID)
}

// advanceLocked applies the passage of time: launches finish and unanswered
// lifecycle actions time out (which terminates the instance, as both
// CONTINUE and ABANDON do for termination hooks).
func (f *Fake) advanceLocked(g *Group) {
	now := f.opts.Now()
	kept := g.Instances[:0]
	for _, in := range g.Instances {
		switch {
		case in.State == StatePending && !now.Before(in.launched.Add(f.opts.LaunchDelay)):
			in.State = StateInService
		case in.State == StateTerminatingWait && now.After(in.deadline):
			continue
		}
		kept = append(kept, in)
	}
	g.Instances = kept
}

// setDesiredLocked launches or terminates instances to match desired.
func (f *Fake) setDesiredLocked(g *Group, desired int) {
	g.Desired = desired
	now := f.opts.Now()
	var live []int // indexes of instances that count toward capacity
	for i, in := range g.Instances {
		if in.State != StateTerminatingWait {
			live = append(live, i)
		}
	}
	for n := len(live); n < desired; n++ {
		g.Instances = append(g.Instances, Instance{ID: f.newIDLocked(), State: StatePending, launched: now})
	}
	excess := len(live) - desired
	if excess <= 0 {
		return
	}
	// Pending instances go first, then the newest in service.
	slices.SortStableFunc(live, func(a, b int) int {
		pa, pb := g.Instances[a].State == StatePending, g.Instances[b].State == StatePending
		switch {
		case pa != pb && pa:
			return -1
		case pa != pb:
			return 1
		}
		return b - a
	})
	doomed := map[int]bool{}
	for _, i := range live[:excess] {
		doomed[i] = true
	}
	kept := g.Instances[:0]
	for i, in := range g.Instances {
		if doomed[i] {
			if g.Hook == "" {
				continue
			}
			in.State = StateTerminatingWait
			in.deadline = now.Add(g.HeartbeatTimeout)
		}
		kept = append(kept, in)
	}
	g.Instances = kept
}

// ServeHTTP implements the Query protocol: form-encoded POST with an Action.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "Sender", "MalformedQueryString", err.Error())
		return
	}
	action := r.PostForm.Get("Action")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Action: action, Params: r.PostForm})
	switch action {
	case "SetDesiredCapacity":
		f.setDesiredCapacityLocked(w, r.PostForm)
	case "DescribeAutoScalingGroups":
		f.describeLocked(w, r.PostForm)
	case "CompleteLifecycleAction", "RecordLifecycleActionHeartbeat":
		f.lifecycleLocked(w, action, r.PostForm)
	default:
		writeError(w, http.StatusBadRequest, "Sender", "InvalidAction",
			fmt.Sprintf("The action %s is not valid for this web service.", action))
	}
}

func (f *Fake) groupLocked(w http.ResponseWriter, name string) (*Group, bool) {
	g, ok := f.groups[name]
	if !ok {
		writeError(w, http.StatusBadRequest, "Sender", "ValidationError",
			fmt.Sprintf("AutoScalingGroup name not found - AutoScalingGroup '%s' not found", name))
		return nil, false
	}
	f.advanceLocked(g)
	return g, true
}

func (f *Fake) setDesiredCapacityLocked(w http.ResponseWriter, p url.Values) {
	g, ok := f.groupLocked(w, p.Get("AutoScalingGroupName"))
	if !ok {
		return
	}
	desired, err := strconv.Atoi(p.Get("DesiredCapacity"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "Sender", "ValidationError",
			"1 validation error detected: Value null at 'desiredCapacity' failed to satisfy constraint: Member must not be null")
		return
	}
	switch {
	case g.Busy:
		writeError(w, http.StatusBadRequest, "Sender", "ScalingActivityInProgress",
			"Scaling activity 5e1d4b1a-0000-4000-8000-000000000000 is in progress and blocks this action.")
		return
	case desired > g.Max:
		writeError(w, http.StatusBadRequest, "Sender", "ValidationError",
			fmt.Sprintf("New SetDesiredCapacity value %d is above max value %d for the AutoScalingGroup.", desired, g.Max))
		return
	case desired < g.Min:
		writeError(w, http.StatusBadRequest, "Sender", "ValidationError",
			fmt.Sprintf("New SetDesiredCapacity value %d is below min value %d for the AutoScalingGroup.", desired, g.Min))
		return
	}
	f.setDesiredLocked(g, desired)
	writeXML(w, struct {
		XMLName  xml.Name `xml:"SetDesiredCapacityResponse"`
		Xmlns    string   `xml:"xmlns,attr"`
		Metadata metadata `xml:"ResponseMetadata"`
	}{Xmlns: xmlns, Metadata: setRequestID(w)})
}

type metadata struct {
	RequestID string `xml:"RequestId"`
}

func newMetadata() metadata {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return metadata{RequestID: h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]}
}

type member struct {
	Value string `xml:",chardata"`
}

type xmlInstance struct {
	InstanceID       string `xml:"InstanceId"`
	InstanceType     string `xml:"InstanceType"`
	AvailabilityZone string `xml:"AvailabilityZone"`
	LifecycleState   string `xml:"LifecycleState"`
	HealthStatus     string `xml:"HealthStatus"`
	LaunchTemplate   struct {
		ID      string `xml:"LaunchTemplateId"`
		Name    string `xml:"LaunchTemplateName"`
		Version string `xml:"Version"`
	} `xml:"LaunchTemplate"`
	ProtectedFromScaleIn bool `xml:"ProtectedFromScaleIn"`
}

type xmlGroup struct {
	Name                   string        `xml:"AutoScalingGroupName"`
	ARN                    string        `xml:"AutoScalingGroupARN"`
	MinSize                int           `xml:"MinSize"`
	MaxSize                int           `xml:"MaxSize"`
	DesiredCapacity        int           `xml:"DesiredCapacity"`
	DefaultCooldown        int           `xml:"DefaultCooldown"`
	AvailabilityZones      []member      `xml:"AvailabilityZones>member"`
	LoadBalancerNames      string        `xml:"LoadBalancerNames"`
	TargetGroupARNs        string        `xml:"TargetGroupARNs"`
	HealthCheckType        string        `xml:"HealthCheckType"`
	HealthCheckGracePeriod int           `xml:"HealthCheckGracePeriod"`
	Instances              []xmlInstance `xml:"Instances>member"`
	CreatedTime            string        `xml:"CreatedTime"`
	SuspendedProcesses     string        `xml:"SuspendedProcesses"`
	VPCZoneIdentifier      string        `xml:"VPCZoneIdentifier"`
	EnabledMetrics         string        `xml:"EnabledMetrics"`
	Tags                   string        `xml:"Tags"`
	TerminationPolicies    []member      `xml:"TerminationPolicies>member"`
	NewInstancesProtected  bool          `xml:"NewInstancesProtectedFromScaleIn"`
	ServiceLinkedRoleARN   string        `xml:"ServiceLinkedRoleARN"`
	CapacityRebalance      bool          `xml:"CapacityRebalance"`
}

func (f *Fake) describeLocked(w http.ResponseWriter, p url.Values) {
	var names []string
	for i := 1; ; i++ {
		n := p.Get("AutoScalingGroupNames.member." + strconv.Itoa(i))
		if n == "" {
			break
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		for n := range f.groups {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	var out []xmlGroup
	// Unknown names are left out, without an error, as Auto Scaling does.
	for _, n := range names {
		g, ok := f.groups[n]
		if !ok {
			continue
		}
		f.advanceLocked(g)
		xg := xmlGroup{
			Name: g.Name,
			ARN: fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:6d1c1f7e-0000-4000-8000-000000000000:autoScalingGroupName/%s",
				region, accountID, g.Name),
			MinSize: g.Min, MaxSize: g.Max, DesiredCapacity: g.Desired,
			DefaultCooldown:        300,
			AvailabilityZones:      []member{{region + "a"}, {region + "b"}},
			HealthCheckType:        "EC2",
			HealthCheckGracePeriod: 300,
			CreatedTime:            "2026-01-01T00:00:00.000Z",
			VPCZoneIdentifier:      "subnet-0a1b2c3d4e5f60001,subnet-0a1b2c3d4e5f60002",
			TerminationPolicies:    []member{{"Default"}},
			ServiceLinkedRoleARN: fmt.Sprintf("arn:aws:iam::%s:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
				accountID),
		}
		for i, in := range g.Instances {
			xi := xmlInstance{
				InstanceID:       in.ID,
				InstanceType:     "c7g.large",
				AvailabilityZone: xg.AvailabilityZones[i%2].Value,
				LifecycleState:   in.State,
				HealthStatus:     "Healthy",
			}
			xi.LaunchTemplate.ID = "lt-0123456789abcdef0"
			xi.LaunchTemplate.Name = "nimbus-worker"
			xi.LaunchTemplate.Version = "1"
			xg.Instances = append(xg.Instances, xi)
		}
		out = append(out, xg)
	}
	writeXML(w, struct {
		XMLName  xml.Name   `xml:"DescribeAutoScalingGroupsResponse"`
		Xmlns    string     `xml:"xmlns,attr"`
		Groups   []xmlGroup `xml:"DescribeAutoScalingGroupsResult>AutoScalingGroups>member"`
		Metadata metadata   `xml:"ResponseMetadata"`
	}{Xmlns: xmlns, Groups: out, Metadata: setRequestID(w)})
}

func (f *Fake) lifecycleLocked(w http.ResponseWriter, action string, p url.Values) {
	g, ok := f.groupLocked(w, p.Get("AutoScalingGroupName"))
	if !ok {
		return
	}
	hook := p.Get("LifecycleHookName")
	if hook == "" || hook != g.Hook {
		writeError(w, http.StatusBadRequest, "Sender", "ValidationError",
			fmt.Sprintf("No Lifecycle Hook found with name %s for group %s", hook, g.Name))
		return
	}
	if action == "CompleteLifecycleAction" {
		if r := p.Get("LifecycleActionResult"); r != "CONTINUE" && r != "ABANDON" {
			writeError(w, http.StatusBadRequest, "Sender", "ValidationError",
				fmt.Sprintf("Invalid LifecycleActionResult %q: use CONTINUE or ABANDON", r))
			return
		}
	}
	id := p.Get("InstanceId")
	i := slices.IndexFunc(g.Instances, func(in Instance) bool { return in.ID == id && in.State == StateTerminatingWait })
	if i < 0 {
		writeError(w, http.StatusBadRequest, "Sender", "ValidationError",
			fmt.Sprintf("No active Lifecycle Action found with instance ID %s", id))
		return
	}
	if action == "CompleteLifecycleAction" {
		g.Instances = slices.Delete(g.Instances, i, i+1)
	} else {
		g.Instances[i].deadline = f.opts.Now().Add(g.HeartbeatTimeout)
	}
	// Both actions answer with an empty <ActionResult/> element.
	type empty struct{ XMLName xml.Name }
	writeXML(w, struct {
		XMLName  xml.Name
		Xmlns    string `xml:"xmlns,attr"`
		Result   empty
		Metadata metadata `xml:"ResponseMetadata"`
	}{
		XMLName:  xml.Name{Local: action + "Response"},
		Xmlns:    xmlns,
		Result:   empty{XMLName: xml.Name{Local: action + "Result"}},
		Metadata: setRequestID(w),
	})
}

func writeXML(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(v)
}

// setRequestID puts the request id where Auto Scaling does, in the
// x-amzn-RequestId header (the SDK reads it from there) and in the body.
func setRequestID(w http.ResponseWriter) metadata {
	m := newMetadata()
	w.Header().Set("X-Amzn-Requestid", m.RequestID)
	return m
}

type xmlError struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// writeError answers as Auto Scaling does: an ErrorResponse whose Type is
// Sender for the caller's mistakes and Receiver for the service's.
func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	id := setRequestID(w).RequestID
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		Error     xmlError `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}{Xmlns: xmlns, Error: xmlError{Type: typ, Code: code, Message: msg}, RequestID: id})
}
