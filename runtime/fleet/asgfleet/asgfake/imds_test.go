package asgfake_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nimbus-ml/nimbus/runtime/fleet/asgfleet/asgfake"
)

func TestIMDSRequiresToken(t *testing.T) {
	t.Parallel()
	url := asgfake.Start(t, asgfake.NewIMDS("i-1", func() (string, bool) { return "InService", true }))
	get := func(t *testing.T, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url+"/latest/meta-data/instance-id", nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("X-aws-ec2-metadata-token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(t, ""); code != http.StatusUnauthorized {
		t.Fatalf("IMDSv1 read got status %d, want 401", code)
	}
	req, err := http.NewRequest(http.MethodPut, url+"/latest/api/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code, body := get(t, strings.TrimSpace(string(tok))); code != http.StatusOK || body != "i-1" {
		t.Fatalf("IMDSv2 read got %d %q, want 200 %q", code, body, "i-1")
	}
}
