// Package goawstest runs goaws, an SQS-compatible server that speaks the
// Query protocol, inside a test binary on a loopback port.
package goawstest

import (
	"io"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/Admiral-Piett/goaws/app"
	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/router"
	"github.com/sirupsen/logrus"
)

// Start serves goaws and returns its URL and a function that stops it. goaws
// keeps its queues and settings in package variables, so a test binary runs
// one, from TestMain.
func Start() (endpoint string, stop func()) {
	logrus.SetOutput(io.Discard) // goaws logs every request through logrus
	srv := httptest.NewServer(router.New())
	u, err := url.Parse(srv.URL)
	if err != nil {
		panic(err) // httptest made the URL
	}
	// CreateQueue builds queue URLs and ARNs from these, so they point back
	// to this server.
	app.CurrentEnvironment.Host = u.Hostname()
	app.CurrentEnvironment.Port = u.Port()
	app.CurrentEnvironment.AccountID = "000000000000"
	app.CurrentEnvironment.QueueAttributeDefaults.VisibilityTimeout = 30
	// PeriodicTasks returns expired messages to their queues and dead-letters
	// them; a short tick keeps visibility expiry close to the timeout.
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		gosqs.PeriodicTasks(100*time.Millisecond, quit)
	}()
	return srv.URL, func() {
		close(quit)
		<-done
		srv.Close()
	}
}

// RunTests is TestMain's body: it starts goaws, stores its URL in *endpoint,
// runs the tests and stops goaws, returning the exit code.
func RunTests(m *testing.M, endpoint *string) int {
	var stop func()
	*endpoint, stop = Start()
	defer stop()
	return m.Run()
}
