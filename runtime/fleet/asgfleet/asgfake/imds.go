package asgfake

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// IMDS is instance metadata (IMDSv2 only) as one instance sees it: a session
// token from PUT /latest/api/token is required on every read, as on an
// instance whose launch template sets HttpTokens=required. It serves
// instance-id and autoscaling/target-lifecycle-state, and answers 404 for
// anything else. Its methods are safe for concurrent use.
type IMDS struct {
	instanceID  string
	targetState func() (string, bool)

	mu     sync.Mutex
	tokens map[string]bool
	reads  map[string]int
}

// NewIMDS serves metadata for instanceID whose target lifecycle state
// targetState reports; ok false makes that path 404, as before the instance
// joins a group.
func NewIMDS(instanceID string, targetState func() (state string, ok bool)) *IMDS {
	return &IMDS{instanceID: instanceID, targetState: targetState, tokens: map[string]bool{}, reads: map[string]int{}}
}

// IMDS returns the metadata service of one of f's instances: its target
// lifecycle state is "InService" while it launches or serves, "Terminated"
// once the group chose it for termination (and after it is gone).
func (f *Fake) IMDS(instanceID string) *IMDS {
	return NewIMDS(instanceID, func() (string, bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, g := range f.groups {
			f.advanceLocked(g)
			for _, in := range g.Instances {
				if in.ID != instanceID {
					continue
				}
				if in.State == StateTerminatingWait {
					return "Terminated", true
				}
				return "InService", true
			}
		}
		return "Terminated", true
	})
}

// Reads reports how often path (e.g. "autoscaling/target-lifecycle-state")
// was read with a valid token.
func (m *IMDS) Reads(path string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads[path]
}

// ServeHTTP implements IMDSv2.
func (m *IMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/latest/api/token" {
		m.token(w, r)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	m.mu.Lock()
	ok := m.tokens[r.Header.Get("X-Aws-Ec2-Metadata-Token")]
	m.mu.Unlock()
	if !ok {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	path, found := strings.CutPrefix(r.URL.Path, "/latest/meta-data/")
	if !found {
		http.NotFound(w, r)
		return
	}
	var value string
	switch path {
	case "instance-id":
		value = m.instanceID
	case "autoscaling/target-lifecycle-state":
		if value, found = m.targetState(); !found {
			http.NotFound(w, r)
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	m.mu.Lock()
	m.reads[path]++
	m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, value)
}

func (m *IMDS) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
	if err != nil || ttl < 1 || ttl > 21600 {
		http.Error(w, "", http.StatusBadRequest)
		return
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	m.mu.Lock()
	m.tokens[tok] = true
	m.mu.Unlock()
	w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", strconv.Itoa(ttl))
	fmt.Fprint(w, tok)
}
