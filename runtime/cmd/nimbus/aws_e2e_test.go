package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/awsclients"
	"github.com/nimbus-ml/nimbus/runtime/classify/classifytest"
	"github.com/nimbus-ml/nimbus/runtime/fleet/asgfleet"
	"github.com/nimbus-ml/nimbus/runtime/fleet/asgfleet/asgfake"
	"github.com/nimbus-ml/nimbus/runtime/queue/sqsqueue/goawstest"
	"github.com/nimbus-ml/nimbus/runtime/store"
	"github.com/nimbus-ml/nimbus/runtime/store/s3store"
)

// goawsURL is the in-process goaws (SQS, Query protocol) server every test in
// this binary shares: goaws keeps its queues and settings in package
// variables, so there can be only one. TestMain sets it before any test runs.
var goawsURL string

func TestMain(m *testing.M) {
	os.Exit(goawstest.RunTests(m, &goawsURL))
}

const (
	e2eRegion   = "us-east-1"
	e2eGroup    = "nimbus-workers"
	e2eMaxRecvs = 3
)

// e2eCredentials are dummies: the fakes do not check signatures, and the
// subprocesses get the same through the SDK's default chain (environment).
var e2eCredentials = credentials.NewStaticCredentialsProvider("AKIDNIMBUSE2E", "not-a-secret", "")

// TestAWSEndToEnd runs nimbus web, worker and scaler as separate processes in
// AWS mode against loopback stand-ins: goaws for SQS, gofakes3 for S3 and
// asgfake for EC2 Auto Scaling. Photos are classified through the web tier,
// inputs and results are checked in the buckets, and the scaler must raise
// the group's desired capacity for a burst and bring it back to zero after.
func TestAWSEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nimbus processes and a classifier; skipped in -short mode")
	}
	photos := mustReadPhotos(t)
	// Fetch (or find) the model and ONNX Runtime now, so the worker starts
	// from a warm cache and a missing asset fails here, clearly.
	classifytest.Config(t)
	sys := mustStartAWS(t)

	t.Run("photos get their class", func(t *testing.T) {
		for _, p := range classifytest.Expected() {
			t.Run(p.File, func(t *testing.T) {
				t.Parallel()
				data := photos[p.File]
				status, raw, err := sys.post("/classify", namedFile{field: "myfile", name: p.File, data: data})
				if err != nil {
					t.Fatal(err)
				}
				if status != http.StatusOK {
					t.Fatalf("POST /classify: status %d: %s", status, raw)
				}
				var res nimbus.Result
				if err := json.Unmarshal(raw, &res); err != nil {
					t.Fatalf("decoding %s: %v", raw, err)
				}
				labels := make([]string, 0, len(res.Top5))
				for _, pr := range res.Top5 {
					labels = append(labels, pr.Label)
				}
				if !classifytest.Matches(labels, p.Labels, p.Within) {
					t.Errorf("top-5 %q, want one of %q within %d", labels, p.Labels, p.Within)
				}
				if res.Status != nimbus.StatusDone || res.Name != p.File || len(labels) == 0 || res.Label != labels[0] {
					t.Errorf("result %+v, want status done, file %s and label = top-1", res, p.File)
				}
				sys.checkStored(t, res.ID, data, res.Label)
			})
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// The photos may have scaled the group out; start the burst from zero so
	// that the rise is the burst's doing.
	sys.waitDesired(t, "settle to 0 before the burst", 20*time.Second, func(n int) bool { return n == 0 })

	t.Run("scaler follows a burst", func(t *testing.T) {
		// As on AWS at zero workers: the burst waits in the queue until the
		// scaler asks for workers, and one starts.
		sys.worker.stop(t)
		ids := sys.submitBurst(t, photos, 5)
		sys.waitDesired(t, "rise for a waiting burst", 20*time.Second, func(n int) bool { return n > 0 })
		sys.startWorker(t, "e2e-burst-worker")
		peak, pending := 0, map[nimbus.JobID]bool{}
		for _, id := range ids {
			pending[id] = true
		}
		for deadline := time.Now().Add(40 * time.Second); len(pending) > 0; time.Sleep(100 * time.Millisecond) {
			peak = max(peak, sys.desired(t))
			for id := range pending {
				switch res := sys.job(t, id); res.Status {
				case nimbus.StatusDone:
					delete(pending, id)
				case nimbus.StatusFailed:
					t.Fatalf("job %s failed: %s", id, res.Error)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d burst jobs not done after 40s", len(pending), len(ids))
			}
		}
		t.Logf("burst of %d jobs: desired capacity peaked at %d", len(ids), peak)
		if peak == 0 {
			t.Errorf("desired capacity stayed 0 during a burst of %d jobs at 2 per worker", len(ids))
		}
		for _, id := range ids {
			res := sys.job(t, id)
			sys.checkStored(t, id, photos[res.Name], res.Label)
		}
		sys.waitDesired(t, "fall back to 0 after the burst", 20*time.Second, func(n int) bool { return n == 0 })
	})
}

// awsSystem is the three tiers running against the loopback servers.
type awsSystem struct {
	webURL string
	worker *process
	// startWorker launches another worker process, as the group would.
	startWorker func(t *testing.T, name string) *process
	fleet       *asgfake.Fake
	images      store.Bucket
	results     store.Bucket
	client      *http.Client
}

// mustStartAWS starts the AWS stand-ins, creates the queues, buckets and
// group the infrastructure would, and runs scaler, web tier and one worker
// until the test ends.
func mustStartAWS(t *testing.T) *awsSystem {
	t.Helper()
	ctx := t.Context()
	bin := mustBuildNimbus(t)

	sqsAPI := awsclients.NewSQS(aws.Config{Region: e2eRegion, Credentials: e2eCredentials},
		awsclients.Config{Region: e2eRegion, SQSEndpoint: goawsURL, SQSQueryProtocol: true})
	suffix := randomSuffix(t)
	dlq := mustCreateQueue(ctx, t, sqsAPI, "nimbus-dlq-"+suffix, nil)
	input := mustCreateQueue(ctx, t, sqsAPI, "nimbus-input-"+suffix, map[string]string{
		string(sqstypes.QueueAttributeNameVisibilityTimeout): "30",
		string(sqstypes.QueueAttributeNameRedrivePolicy):     mustRedrivePolicy(ctx, t, sqsAPI, dlq, e2eMaxRecvs),
	})
	output := mustCreateQueue(ctx, t, sqsAPI, "nimbus-output-"+suffix, nil)

	// Plain http, as the subprocesses cannot be handed an httptest TLS root.
	s3srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(s3srv.Close)
	s3API := awsclients.NewS3(aws.Config{Region: e2eRegion, Credentials: e2eCredentials},
		awsclients.Config{Region: e2eRegion, S3Endpoint: s3srv.URL})
	inputBucket, outputBucket := "nimbus-input-"+suffix, "nimbus-output-"+suffix
	sys := &awsSystem{
		fleet:   asgfake.New(asgfake.Options{LaunchDelay: time.Second}),
		images:  mustCreateBucket(ctx, t, s3API, inputBucket),
		results: mustCreateBucket(ctx, t, s3API, outputBucket),
		client:  &http.Client{Timeout: 90 * time.Second},
	}
	sys.fleet.AddGroup(asgfake.GroupSpec{Name: e2eGroup, Min: 0, Max: 20, Desired: 0, Hook: asgfleet.DefaultHook})
	asgURL := asgfake.Start(t, sys.fleet)

	env := childEnv(
		"NIMBUS_BACKEND=aws",
		awsclients.EnvRegion+"="+e2eRegion,
		awsclients.EnvSQSEndpoint+"="+goawsURL,
		awsclients.EnvSQSQueryProtocol+"=true",
		awsclients.EnvS3Endpoint+"="+s3srv.URL,
		awsclients.EnvAutoScalingEndpoint+"="+asgURL,
		"AWS_ACCESS_KEY_ID=AKIDNIMBUSE2E",
		"AWS_SECRET_ACCESS_KEY=not-a-secret",
		"AWS_EC2_METADATA_DISABLED=true",
	)
	common := []string{"--log-format", "json", "--region", e2eRegion, "--input-queue", input, "--output-queue", output,
		"--dead-letter-queue", dlq, "--input-bucket", inputBucket, "--output-bucket", outputBucket}

	scaler := startProcess(t, bin, env, "scaler", append([]string{"scaler", "--group", e2eGroup,
		"--metrics-addr", "127.0.0.1:0", "--scale-interval", "500ms", "--scale-in-after", "3s",
		"--target-per-worker", "2", "--min-workers", "0", "--max-workers", "20"}, common...)...)
	web := startProcess(t, bin, env, "web", append([]string{"web", "--addr", "127.0.0.1:0", "--wait-timeout", "60s"}, common...)...)
	sys.startWorker = func(t *testing.T, name string) *process {
		t.Helper()
		w := startProcess(t, bin, env, name, append([]string{"worker", "--name", name,
			"--metrics-addr", "127.0.0.1:0", "--sessions", "2", "--max-receives", strconv.Itoa(e2eMaxRecvs)}, common...)...)
		w.waitLog(t, "worker running", 60*time.Second)
		return w
	}

	scaler.waitLog(t, "scaler running", 30*time.Second)
	sys.webURL = "http://" + web.waitLog(t, "listening", 30*time.Second)["addr"].(string)
	sys.waitReady(t, web, 30*time.Second)
	sys.worker = sys.startWorker(t, "e2e-worker")
	return sys
}

// mustBuildNimbus builds this package's binary into a temporary directory.
func mustBuildNimbus(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build nimbus with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "nimbus")
	cmd := exec.CommandContext(t.Context(), goTool, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func mustCreateQueue(ctx context.Context, t *testing.T, api *sqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	out, err := api.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue(%s): %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

// mustRedrivePolicy sends the input queue's failures to dlq after maxReceives.
func mustRedrivePolicy(ctx context.Context, t *testing.T, api *sqs.Client, dlq string, maxReceives int) string {
	t.Helper()
	out, err := api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(dlq),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes(QueueArn): %v", err)
	}
	policy, err := json.Marshal(map[string]string{
		"deadLetterTargetArn": out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     strconv.Itoa(maxReceives),
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(policy)
}

func mustCreateBucket(ctx context.Context, t *testing.T, api *s3.Client, name string) store.Bucket {
	t.Helper()
	if _, err := api.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("CreateBucket(%s): %v", name, err)
	}
	b, err := s3store.Open(api, name, nil)
	if err != nil {
		t.Fatalf("s3store.Open(%s): %v", name, err)
	}
	return b
}

// childEnv is this process's environment without NIMBUS_* and AWS_*
// settings that could leak into the subprocesses' flags or credentials,
// except where the classifier's assets are (NIMBUS_ASSETS, NIMBUS_CACHE),
// followed by extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "NIMBUS_ASSETS" || k == "NIMBUS_CACHE" ||
			!strings.HasPrefix(k, "NIMBUS_") && !strings.HasPrefix(k, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// process is a nimbus subprocess whose combined output is kept for logs.
type process struct {
	name    string
	cmd     *exec.Cmd
	out     *lockedBuffer
	done    chan struct{} // closed when the process has exited; err is set
	err     error
	stopped bool // by stop, before the test ended
}

// stop ends the process with SIGTERM, as a scale-in would, and expects it to
// drain and exit cleanly.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signalling nimbus %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("nimbus %s still running 20s after SIGTERM", p.name)
	}
	if p.err != nil {
		t.Fatalf("nimbus %s after SIGTERM: %v", p.name, p.err)
	}
	p.stopped = true
}

// lockedBuffer is a bytes.Buffer safe for the writer and readers at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startProcess runs bin with args until the test ends, then stops it with
// SIGTERM, as systemd would, and expects a clean exit. Its output is logged
// if the test failed.
func startProcess(t *testing.T, bin string, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting nimbus %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
			if !p.stopped {
				t.Errorf("nimbus %s exited before the test ended: %v", name, p.err)
			}
		default:
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Errorf("signalling nimbus %s: %v", name, err)
			}
			select {
			case <-p.done:
				if p.err != nil {
					t.Errorf("nimbus %s after SIGTERM: %v", name, p.err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("nimbus %s still running 20s after SIGTERM; killing it", name)
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("nimbus %s output:\n%s", name, p.out)
		}
	})
	return p
}

// waitLog waits for the process to log a JSON record with the message msg
// and returns the record.
func (p *process) waitLog(t *testing.T, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
				return rec
			}
		}
		select {
		case <-p.done:
			t.Fatalf("nimbus %s exited (%v) before logging %q", p.name, p.err, msg)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nimbus %s did not log %q within %v", p.name, msg, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady polls GET /readyz until it answers 200.
func (s *awsSystem) waitReady(t *testing.T, web *process, timeout time.Duration) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		resp, err := s.client.Get(s.webURL + "/readyz")
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, raw)
		} else {
			last = err.Error()
		}
		select {
		case <-web.done:
			t.Fatalf("nimbus web exited (%v) before it was ready", web.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("web tier not ready within %v: %s", timeout, last)
		}
	}
}

type namedFile struct {
	field, name string
	data        []byte
}

// post sends files as a multipart form to the web tier. It does not fail
// the test itself, so that any goroutine may call it.
func (s *awsSystem) post(path string, files ...namedFile) (int, []byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range files {
		w, err := mw.CreateFormFile(f.field, f.name)
		if err != nil {
			return 0, nil, err
		}
		if _, err := w.Write(f.data); err != nil {
			return 0, nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return 0, nil, err
	}
	resp, err := s.client.Post(s.webURL+path, mw.FormDataContentType(), &body)
	if err != nil {
		return 0, nil, fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("POST %s: reading the response: %w", path, err)
	}
	return resp.StatusCode, raw, nil
}

// job reads a job's status through GET /v1/jobs/{id}.
func (s *awsSystem) job(t *testing.T, id nimbus.JobID) nimbus.Result {
	t.Helper()
	resp, err := s.client.Get(s.webURL + "/v1/jobs/" + string(id))
	if err != nil {
		t.Fatalf("GET job %s: %v", id, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET job %s: status %d: %s", id, resp.StatusCode, raw)
	}
	var res nimbus.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("GET job %s: decoding %s: %v", id, raw, err)
	}
	return res
}

// submitBurst posts every photo `rounds` times as async jobs, one request per
// round, all at once, and returns the accepted job ids.
func (s *awsSystem) submitBurst(t *testing.T, photos map[string][]byte, rounds int) []nimbus.JobID {
	t.Helper()
	var files []namedFile
	for _, p := range classifytest.Expected() {
		files = append(files, namedFile{field: "files", name: p.File, data: photos[p.File]})
	}
	var (
		mu  sync.Mutex
		ids []nimbus.JobID
		wg  sync.WaitGroup
	)
	for range rounds {
		wg.Go(func() {
			status, raw, err := s.post("/v1/jobs", files...)
			if err != nil {
				t.Error(err)
				return
			}
			if status != http.StatusAccepted {
				t.Errorf("POST /v1/jobs: status %d: %s", status, raw)
				return
			}
			var resp struct{ Jobs []struct{ ID nimbus.JobID } }
			if err := json.Unmarshal(raw, &resp); err != nil || len(resp.Jobs) != len(files) {
				t.Errorf("POST /v1/jobs accepted %s, want %d jobs (%v)", raw, len(files), err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, j := range resp.Jobs {
				ids = append(ids, j.ID)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return ids
}

// checkStored asserts that the job's image is in the input bucket, byte for
// byte, and its done result with the given label in the output bucket.
func (s *awsSystem) checkStored(t *testing.T, id nimbus.JobID, image []byte, label string) {
	t.Helper()
	ctx := t.Context()
	got, _, err := s.images.Get(ctx, id.InputKey())
	if err != nil {
		t.Errorf("input bucket: %s: %v", id.InputKey(), err)
	} else if !bytes.Equal(got, image) {
		t.Errorf("input bucket: %s holds %d bytes that differ from the %d uploaded", id.InputKey(), len(got), len(image))
	}
	raw, _, err := s.results.Get(ctx, id.ResultKey())
	if err != nil {
		t.Errorf("output bucket: %s: %v", id.ResultKey(), err)
		return
	}
	res, err := nimbus.DecodeResult(raw)
	if err != nil {
		t.Errorf("output bucket: %s: %v", id.ResultKey(), err)
		return
	}
	if res.ID != id || res.Status != nimbus.StatusDone || res.Label != label {
		t.Errorf("output bucket: %s holds %+v, want job %s done with label %q", id.ResultKey(), res, id, label)
	}
}

// desired is the fake group's desired capacity, as the scaler last set it.
func (s *awsSystem) desired(t *testing.T) int {
	t.Helper()
	g, ok := s.fleet.Group(e2eGroup)
	if !ok {
		t.Fatalf("group %s is gone from the fake", e2eGroup)
	}
	return g.Desired
}

// waitDesired polls the group's desired capacity until ok accepts it.
func (s *awsSystem) waitDesired(t *testing.T, what string, timeout time.Duration, ok func(int) bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		n := s.desired(t)
		if ok(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("desired capacity did not %s within %v: it is %d", what, timeout, n)
		}
	}
}

// mustReadPhotos reads the expected photos of ../shared/photos by name.
func mustReadPhotos(t *testing.T) map[string][]byte {
	t.Helper()
	dir := classifytest.PhotosDir(t)
	photos := map[string][]byte{}
	for _, p := range classifytest.Expected() {
		data, err := os.ReadFile(filepath.Join(dir, p.File))
		if err != nil {
			t.Fatal(err)
		}
		photos[p.File] = data
	}
	return photos
}
