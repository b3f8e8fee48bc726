// Package web is the web tier: it accepts images over HTTP, stores each in
// the input bucket, enqueues a claim check, and answers with the result when
// it arrives on the output queue (or, for async jobs, from the output bucket).
package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/imaging"
	"github.com/nimbus-ml/nimbus/runtime/queue"
	"github.com/nimbus-ml/nimbus/runtime/store"
)

// Config tunes the web tier. Zero values take the documented defaults.
type Config struct {
	// MaxUploadBytes caps one image (default 10 MiB).
	MaxUploadBytes int64
	// MaxPixels refuses images whose header claims more (default 40 million).
	MaxPixels int
	// MaxBatchFiles caps the files of one POST /v1/jobs (default 32).
	MaxBatchFiles int
	// WaitTimeout bounds how long POST /classify waits for the result
	// (default 60s); the job goes on and its id is returned.
	WaitTimeout time.Duration
	// MaxPending is the backlog of jobs accepted here and not yet finished
	// beyond which uploads get 503 and Retry-After (default 1000).
	MaxPending int
	// PollInterval is how often a waiting request also checks the output
	// bucket, in case its result message went to another web process
	// (default 2s).
	PollInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = 10 << 20
	}
	if c.MaxPixels <= 0 {
		c.MaxPixels = 40_000_000
	}
	if c.MaxBatchFiles <= 0 {
		c.MaxBatchFiles = 32
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = 60 * time.Second
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 1000
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
}

// Server holds the web tier's dependencies. Set the fields, then use Handler.
type Server struct {
	Input      queue.Queue
	Images     store.Bucket
	Results    store.Bucket
	Dispatcher *Dispatcher
	Config     Config
	// Registry collects /metrics; the caller may register more collectors.
	Registry *prometheus.Registry
	// OnAccept, if set, is told of every accepted job, so a scaler in the
	// same process can scale out before the queue metric catches up.
	OnAccept func(n int)
	Logger   *slog.Logger
	Now      func() time.Time

	requests *prometheus.HistogramVec
}

// Handler builds the echo router and registers the server's metrics; call it
// once per Server.
func (s *Server) Handler() http.Handler {
	s.Config.setDefaults()
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Registry == nil {
		s.Registry = prometheus.NewRegistry()
	}
	s.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "nimbus_http_request_seconds", Help: "HTTP request latency by route and status.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, []string{"route", "code"})
	s.Registry.MustRegister(s.requests)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(s.observe)
	e.POST("/classify", s.classify)
	e.POST("/", s.classify) // the original workload's load generator posts here
	e.POST("/v1/jobs", s.submit)
	e.GET("/v1/jobs/:id", s.job)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.ready)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})))
	return e
}

// statuses maps error codes to HTTP statuses, in one place.
var statuses = map[string]int{
	nimbus.EINVALID:     http.StatusBadRequest,
	nimbus.ENOTFOUND:    http.StatusNotFound,
	nimbus.ETOOLARGE:    http.StatusRequestEntityTooLarge,
	nimbus.EUNSUPPORTED: http.StatusUnsupportedMediaType,
	nimbus.EUNDECODABLE: http.StatusUnprocessableEntity,
	nimbus.EBUSY:        http.StatusServiceUnavailable,
	nimbus.EUNAVAILABLE: http.StatusServiceUnavailable,
	nimbus.ETIMEOUT:     http.StatusGatewayTimeout,
	nimbus.EINTERNAL:    http.StatusInternalServerError,
}

// apiError is an error response; ID is set when a job was accepted anyway.
type apiError struct {
	Error string       `json:"error"`
	ID    nimbus.JobID `json:"id,omitempty"`
	File  string       `json:"file,omitempty"`
}

func (s *Server) fail(c echo.Context, err error, id nimbus.JobID, file string) error {
	code := nimbus.ErrorCode(err)
	status := statuses[code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if code == nimbus.EBUSY || code == nimbus.EUNAVAILABLE {
		c.Response().Header().Set("Retry-After", "5")
	}
	switch {
	case status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		s.Logger.Warn("request not served", "route", c.Path(), "status", status, "job", id, "err", err)
	case status >= 500:
		s.Logger.Error("request failed", "route", c.Path(), "status", status, "job", id, "err", err)
	}
	return c.JSON(status, apiError{Error: nimbus.ErrorMessage(err), ID: id, File: file})
}

// errorHandler answers echo's own errors (unknown route, wrong method) in
// the same JSON shape.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, "internal error"
	if he := (*echo.HTTPError)(nil); errors.As(err, &he) {
		status, msg = he.Code, fmt.Sprint(he.Message)
	}
	_ = c.JSON(status, apiError{Error: msg})
}

func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.requests.WithLabelValues(route, strconv.Itoa(c.Response().Status)).Observe(time.Since(start).Seconds())
		return nil
	}
}

// upload is one validated image.
type upload struct {
	name string
	data []byte
	info imaging.Info
}

// readUploads reads the multipart body's files, validating each. field
// limits which form field counts ("" takes every file part).
func (s *Server) readUploads(c echo.Context, field string, maxFiles int) ([]upload, error) {
	req := c.Request()
	mediaType, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" {
		return nil, nimbus.Errorf(nimbus.EINVALID, "send the image as multipart/form-data in the field %q", "myfile")
	}
	// Headroom for multipart framing; the per-file cap is enforced below.
	limit := int64(maxFiles)*s.Config.MaxUploadBytes + 1<<20
	req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
	mr, err := req.MultipartReader()
	if err != nil {
		return nil, nimbus.Errorf(nimbus.EINVALID, "reading multipart body: %v", err)
	}
	var ups []upload
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, s.bodyError(err)
		}
		if part.FileName() == "" || (field != "" && part.FormName() != field) {
			part.Close()
			continue
		}
		if len(ups) == maxFiles {
			return nil, nimbus.Errorf(nimbus.ETOOLARGE, "at most %d files per request", maxFiles)
		}
		up, err := s.readPart(part)
		part.Close()
		if err != nil {
			return nil, err
		}
		ups = append(ups, up)
	}
	if len(ups) == 0 {
		return nil, nimbus.Errorf(nimbus.EINVALID, "no file in the form field %q", "myfile")
	}
	return ups, nil
}

func (s *Server) readPart(part *multipart.Part) (upload, error) {
	name := nimbus.CleanName(part.FileName())
	data, err := io.ReadAll(io.LimitReader(part, s.Config.MaxUploadBytes+1))
	if err != nil {
		return upload{}, s.bodyError(err)
	}
	if int64(len(data)) > s.Config.MaxUploadBytes {
		return upload{}, nimbus.Errorf(nimbus.ETOOLARGE, "%s is larger than %d bytes (%s)", name, s.Config.MaxUploadBytes, mib(s.Config.MaxUploadBytes))
	}
	info, err := imaging.Check(data, s.Config.MaxPixels)
	if err != nil {
		return upload{}, &nimbus.Error{Code: nimbus.ErrorCode(err), Message: name + ": " + nimbus.ErrorMessage(err), Err: err}
	}
	return upload{name: name, data: data, info: info}, nil
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func (s *Server) bodyError(err error) error {
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return nimbus.Errorf(nimbus.ETOOLARGE, "the request body is larger than %d bytes", mbe.Limit)
	}
	return nimbus.Errorf(nimbus.EINVALID, "reading the upload: %v", err)
}

// admit refuses new work when this process's backlog is full.
func (s *Server) admit(n int) error {
	// A job whose result never came back here (it went to another web
	// process) stops counting after an hour.
	if pending := s.Dispatcher.Pending(s.Now(), time.Hour); pending+n > s.Config.MaxPending {
		return nimbus.Errorf(nimbus.EBUSY, "%d jobs are in progress; try again shortly", pending)
	}
	return nil
}

// accept stores the image in the input bucket and returns its claim check;
// enqueue sends it.
func (s *Server) accept(ctx context.Context, up upload) (nimbus.Job, error) {
	now := s.Now()
	sum := sha256.Sum256(up.data)
	id := nimbus.NewJobID(now)
	job := nimbus.Job{
		ID: id, Key: id.InputKey(), Name: up.name, SHA256: hex.EncodeToString(sum[:]),
		ContentType: up.info.Format.ContentType, Submitted: now,
	}
	attrs := store.Attrs{ContentType: job.ContentType, Metadata: map[string]string{
		"job": string(id), "sha256": job.SHA256, "name": asciiName(up.name),
	}}
	if err := s.Images.Put(ctx, job.Key, up.data, attrs); err != nil {
		return job, unavailable("storing the image", err)
	}
	return job, nil
}

// enqueue sends the claim check; on failure the stored image is removed so
// that nothing half-accepted is left behind.
func (s *Server) enqueue(ctx context.Context, job nimbus.Job) error {
	body, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("encoding job: %w", err)
	}
	if _, err := s.Input.Send(ctx, body); err != nil {
		if derr := s.Images.Delete(context.WithoutCancel(ctx), job.Key); derr != nil {
			s.Logger.Warn("removing image of a job that was not enqueued", "job", job.ID, "err", derr)
		}
		return unavailable("enqueueing the job", err)
	}
	s.Dispatcher.Accepted(job.ID, job.Submitted)
	if s.OnAccept != nil {
		s.OnAccept(1)
	}
	return nil
}

// unavailable turns a dependency's failure into a retryable client error
// unless it already says what went wrong.
func unavailable(doing string, err error) error {
	if code := nimbus.ErrorCode(err); code != nimbus.EINTERNAL {
		return err
	}
	return &nimbus.Error{Code: nimbus.EUNAVAILABLE, Message: doing + " failed; try again shortly", Err: err}
}

// asciiName keeps metadata headers plain ASCII, as S3 requires.
func asciiName(name string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '_'
		}
		return r
	}, name)
}

// wantsText reports whether the client asked for a bare label.
func wantsText(c echo.Context) bool {
	accept := c.Request().Header.Get("Accept")
	return strings.Contains(accept, "text/plain") && !strings.Contains(accept, "application/json")
}

func (s *Server) classify(c echo.Context) error {
	ups, err := s.readUploads(c, "myfile", 1)
	if err != nil {
		return s.fail(c, err, "", "")
	}
	if err := s.admit(1); err != nil {
		return s.fail(c, err, "", ups[0].name)
	}
	ctx := c.Request().Context()
	job, err := s.accept(ctx, ups[0])
	if err != nil {
		return s.fail(c, err, "", ups[0].name)
	}
	results, cancel := s.Dispatcher.Register(job.ID)
	defer cancel()
	if err := s.enqueue(ctx, job); err != nil {
		return s.fail(c, err, "", job.Name)
	}
	res, err := s.await(ctx, job.ID, results)
	if err != nil {
		return s.fail(c, err, job.ID, job.Name)
	}
	if res.Status == nimbus.StatusFailed {
		code := res.Code
		if statuses[code] == 0 {
			code = nimbus.EINTERNAL
		}
		return s.fail(c, &nimbus.Error{Code: code, Message: res.Error}, job.ID, job.Name)
	}
	if wantsText(c) {
		return c.String(http.StatusOK, res.Label)
	}
	return c.JSON(http.StatusOK, res)
}

// await waits for the job's terminal result from the dispatcher, checking the
// output bucket now and then in case the message went elsewhere.
func (s *Server) await(ctx context.Context, id nimbus.JobID, results <-chan nimbus.Result) (nimbus.Result, error) {
	timeout := time.NewTimer(s.Config.WaitTimeout)
	defer timeout.Stop()
	poll := time.NewTicker(s.Config.PollInterval)
	defer poll.Stop()
	for {
		select {
		case r := <-results:
			return r, nil
		case <-poll.C:
			if r, err := s.stored(ctx, id); err == nil && r.Status.Terminal() {
				s.Dispatcher.deliver(r) // its message went elsewhere: settle it here
				return r, nil
			}
		case <-timeout.C:
			return nimbus.Result{}, nimbus.Errorf(nimbus.ETIMEOUT,
				"no result within %v; the job goes on: GET /v1/jobs/%s for its result", s.Config.WaitTimeout, id)
		case <-ctx.Done():
			return nimbus.Result{}, nimbus.Errorf(nimbus.ETIMEOUT, "the request ended before the result: %v", ctx.Err())
		}
	}
}

// stored reads the job's result object.
func (s *Server) stored(ctx context.Context, id nimbus.JobID) (nimbus.Result, error) {
	raw, _, err := s.Results.Get(ctx, id.ResultKey())
	if err != nil {
		return nimbus.Result{}, err
	}
	return nimbus.DecodeResult(raw)
}

// jobRef is a submitted job in a 202 response.
type jobRef struct {
	ID     nimbus.JobID  `json:"id"`
	File   string        `json:"file"`
	Status nimbus.Status `json:"status"`
	URL    string        `json:"url"`
}

func (s *Server) submit(c echo.Context) error {
	ups, err := s.readUploads(c, "", s.Config.MaxBatchFiles)
	if err != nil {
		return s.fail(c, err, "", "")
	}
	if err := s.admit(len(ups)); err != nil {
		return s.fail(c, err, "", "")
	}
	ctx := c.Request().Context()
	refs := make([]jobRef, 0, len(ups))
	for _, up := range ups {
		job, err := s.accept(ctx, up)
		if err == nil {
			err = s.enqueue(ctx, job)
		}
		if err != nil {
			// Jobs already accepted go on; say which so nothing is resubmitted twice.
			return c.JSON(statuses[nimbus.ErrorCode(err)], map[string]any{
				"error": nimbus.ErrorMessage(err), "file": up.name, "jobs": refs,
			})
		}
		refs = append(refs, jobRef{ID: job.ID, File: job.Name, Status: nimbus.StatusQueued, URL: "/v1/jobs/" + string(job.ID)})
	}
	return c.JSON(http.StatusAccepted, map[string]any{"jobs": refs})
}

func (s *Server) job(c echo.Context) error {
	id := nimbus.JobID(c.Param("id"))
	if err := id.Validate(); err != nil {
		return s.fail(c, err, "", "")
	}
	ctx := c.Request().Context()
	res, err := s.stored(ctx, id)
	switch nimbus.ErrorCode(err) {
	case "":
		return c.JSON(http.StatusOK, res)
	case nimbus.ENOTFOUND:
	default:
		return s.fail(c, unavailable("reading the result", err), id, "")
	}
	// No result yet: the image tells whether the job exists.
	attrs, err := s.Images.Head(ctx, id.InputKey())
	switch nimbus.ErrorCode(err) {
	case "":
		return c.JSON(http.StatusOK, nimbus.Result{ID: id, Name: attrs.Metadata["name"], Status: nimbus.StatusQueued, Updated: attrs.Modified})
	case nimbus.ENOTFOUND:
		return s.fail(c, nimbus.Errorf(nimbus.ENOTFOUND, "no job %s", id), "", "")
	default:
		return s.fail(c, unavailable("reading the job", err), id, "")
	}
}

// ready checks that the queue and buckets answer and results are flowing.
func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
	defer cancel()
	var problems []string
	if _, err := s.Input.Depth(ctx); err != nil {
		problems = append(problems, "input queue: "+err.Error())
	}
	for name, b := range map[string]store.Bucket{"input bucket": s.Images, "output bucket": s.Results} {
		if _, err := b.Head(ctx, "readyz-probe"); nimbus.ErrorCode(err) != nimbus.ENOTFOUND {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if !s.Dispatcher.Healthy() {
		problems = append(problems, "result dispatcher is not receiving from the output queue")
	}
	if len(problems) > 0 {
		c.Response().Header().Set("Retry-After", "5")
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": problems})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
