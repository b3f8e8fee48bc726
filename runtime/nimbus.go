// Package nimbus holds the domain of the Nimbus image-classification service:
// jobs, results and their status, and the error codes every layer speaks.
//
// It imports only the standard library. Adapters (queues, buckets, fleets,
// HTTP) live in subpackages and translate their own failures into Error codes.
package nimbus

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// JobID identifies one image from upload to result. It is the only thing
// object keys are derived from: user file names never become paths.
type JobID string

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewJobID returns a random 128-bit identifier, prefixed by the time so that
// listings sort roughly by submission.
func NewJobID(now time.Time) JobID {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails on supported platforms
	return JobID(idEncoding.EncodeToString(b[:]))
}

// Validate reports whether id has the shape NewJobID produces, so that an id
// taken from a URL can safely become part of an object key.
func (id JobID) Validate() error {
	if len(id) != 26 {
		return Errorf(EINVALID, "job id %q is not a Nimbus job id", truncate(string(id), 40))
	}
	if _, err := idEncoding.DecodeString(string(id)); err != nil {
		return Errorf(EINVALID, "job id %q is not a Nimbus job id", truncate(string(id), 40))
	}
	return nil
}

// InputKey is where the uploaded image lives in the input bucket.
func (id JobID) InputKey() string { return "images/" + string(id) }

// ResultKey is where the job's latest status lives in the output bucket.
func (id JobID) ResultKey() string { return "results/" + string(id) + ".json" }

// Job is the claim check sent on the input queue: the image itself stays in
// the input bucket. Encoded, it stays well under 1 KiB.
type Job struct {
	ID          JobID     `json:"id"`
	Key         string    `json:"key"`
	Name        string    `json:"name"`
	SHA256      string    `json:"sha256"`
	ContentType string    `json:"contentType"`
	Submitted   time.Time `json:"submitted"`
}

// MaxNameLength bounds the original file name carried in messages and results.
const MaxNameLength = 200

// CleanName turns a client-supplied file name into something safe to display
// and log: the base name only, printable runes only, bounded length. It is
// never used as a path.
func CleanName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." {
		name = "upload"
	}
	return truncate(name, MaxNameLength)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Status is where a job is in its life.
type Status string

// A job is queued until a worker picks it up, running while a worker holds
// it, and ends done or failed.
const (
	StatusQueued  Status = "queued"
	StatusRunning Status = "running"
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
)

// Terminal reports whether no further change will happen.
func (s Status) Terminal() bool { return s == StatusDone || s == StatusFailed }

// Prediction is one class and its softmax probability.
type Prediction struct {
	Label string  `json:"label"`
	Score float32 `json:"score"`
}

// Timings records where a job's time went, in milliseconds.
type Timings struct {
	QueuedMs     float64 `json:"queuedMs"`
	FetchMs      float64 `json:"fetchMs"`
	PreprocessMs float64 `json:"preprocessMs"`
	InferenceMs  float64 `json:"inferenceMs"`
	TotalMs      float64 `json:"totalMs"`
}

// Result is what a worker writes to the output bucket and sends on the output
// queue. Encoded it stays under 1 KiB so that it fits a result message.
type Result struct {
	ID     JobID        `json:"id"`
	Name   string       `json:"file"`
	Status Status       `json:"status"`
	Label  string       `json:"label,omitempty"`
	Score  float32      `json:"score,omitempty"`
	Top5   []Prediction `json:"top5,omitempty"`
	Error  string       `json:"error,omitempty"`
	// Code classifies a failure with one of the error codes.
	Code     string    `json:"code,omitempty"`
	Timings  Timings   `json:"timings"`
	Worker   string    `json:"worker,omitempty"`
	Updated  time.Time `json:"updated"`
	Attempts int       `json:"attempts,omitempty"`
}

// MaxErrorLength bounds the failure text carried in a result.
const MaxErrorLength = 300

// Failed builds the terminal result for a job that cannot be classified;
// code says why (EUNDECODABLE for a bad image, EINTERNAL when processing
// itself kept failing).
func Failed(job Job, code, reason string, now time.Time) Result {
	return Result{ID: job.ID, Name: job.Name, Status: StatusFailed, Code: code, Error: truncate(reason, MaxErrorLength), Updated: now}
}

// DecodeJob parses a claim-check message and checks it can be acted upon.
func DecodeJob(body []byte) (Job, error) {
	var j Job
	if err := json.Unmarshal(body, &j); err != nil {
		return Job{}, Errorf(EINVALID, "decoding job message: %v", err)
	}
	if err := j.ID.Validate(); err != nil {
		return Job{}, err
	}
	if j.Key != j.ID.InputKey() {
		return Job{}, Errorf(EINVALID, "job %s names object %q, want %q", j.ID, truncate(j.Key, 60), j.ID.InputKey())
	}
	return j, nil
}

// DecodeResult parses a result message or object.
func DecodeResult(body []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(body, &r); err != nil {
		return Result{}, Errorf(EINVALID, "decoding result: %v", err)
	}
	if err := r.ID.Validate(); err != nil {
		return Result{}, err
	}
	return r, nil
}

// Error codes shared by every layer; the web tier maps them to HTTP statuses
// in one table.
const (
	EINVALID     = "invalid"     // the input is wrong and retrying will not help
	ENOTFOUND    = "not_found"   // the thing asked for does not exist
	ETOOLARGE    = "too_large"   // the input exceeds a configured cap
	EUNSUPPORTED = "unsupported" // the input's format is not one we take
	EUNDECODABLE = "undecodable" // the image is corrupt or truncated
	EBUSY        = "busy"        // saturated: retry later
	EUNAVAILABLE = "unavailable" // a dependency is down: retry later
	ETIMEOUT     = "timeout"     // the work did not finish in time
	EINTERNAL    = "internal"    // a bug or an unexpected failure
)

// Error is a failure with a code the caller can act on and a message fit for
// the client. Err keeps the cause for logs and errors.Is.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a formatted message; a %w verb keeps the cause.
func Errorf(code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e := (*Error)(nil); errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-facing message: an *Error's message, or a
// generic text for anything else so internals never leak to clients.
func ErrorMessage(err error) string {
	if e := (*Error)(nil); errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
