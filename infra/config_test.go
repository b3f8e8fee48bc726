package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func lookupFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig(lookupFrom(map[string]string{
		"allowedCidrs": `["203.0.113.7/32"]`,
		"maxWorkers":   "12",
		"warmPool":     "true",
		"amiId":        "ami-0123456789abcdef0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	if cfg.MaxWorkers != 12 || !cfg.WarmPool || cfg.AmiID != "ami-0123456789abcdef0" || cfg.HTTPPort != want.HTTPPort || cfg.MaxReceiveCount != 3 || !cfg.ForceDestroy {
		t.Errorf("parsed %+v", cfg)
	}
	if want.MaxWorkers != 20 || want.MinWorkers != 0 || want.LifecycleHookName != "nimbus-drain" {
		t.Errorf("defaults %+v", want)
	}
}

func TestParseConfigJoinsEveryProblem(t *testing.T) {
	_, err := ParseConfig(lookupFrom(map[string]string{
		"allowedCidrs":             `["0.0.0.0/0", "10.0.0.1/8", "not-a-cidr"]`,
		"maxWorkers":               "many",
		"httpPort":                 "22",
		"visibilityTimeoutSeconds": "5",
		"amiId":                    "ubuntu",
		"model":                    "https://example.org/m.onnx",
	}))
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	// A parse error stops before validation; fix it and look again.
	_, err2 := ParseConfig(lookupFrom(map[string]string{
		"allowedCidrs":             `["0.0.0.0/0", "10.0.0.1/8", "not-a-cidr"]`,
		"httpPort":                 "22",
		"visibilityTimeoutSeconds": "5",
		"amiId":                    "ubuntu",
		"model":                    "https://example.org/m.onnx",
	}))
	for _, key := range []string{"nimbus:maxWorkers"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not mention %s: %v", key, err)
		}
	}
	for _, key := range []string{"nimbus:allowedCidrs: \"10.0.0.1/8\"", "nimbus:allowedCidrs: \"not-a-cidr\"", "nimbus:httpPort", "nimbus:visibilityTimeoutSeconds", "nimbus:amiId", "nimbus:modelSha256"} {
		if err2 == nil || !strings.Contains(err2.Error(), key) {
			t.Errorf("error does not mention %s: %v", key, err2)
		}
	}
	if err2 != nil && strings.Contains(err2.Error(), `"0.0.0.0/0"`) {
		t.Errorf("0.0.0.0/0 is a valid, if open, choice: %v", err2)
	}
	if _, err := ParseConfig(lookupFrom(nil)); err == nil || !strings.Contains(err.Error(), "allowedCidrs") {
		t.Errorf("missing allowedCidrs not reported: %v", err)
	}
}

// configKeys are the keys ParseConfig reads.
func configKeys() []string {
	var keys []string
	_, _ = ParseConfig(func(k string) (string, bool) {
		keys = append(keys, k)
		return "", false
	})
	return keys
}

// TestEveryKeyIsDocumented keeps Pulumi.dev.yaml and README.md in step with
// ParseConfig.
func TestEveryKeyIsDocumented(t *testing.T) {
	stackFile, err := os.ReadFile("../Pulumi.dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	inStack := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  nimbus:([A-Za-z0-9]+):`).FindAllStringSubmatch(string(stackFile), -1) {
		inStack[m[1]] = true
	}
	keys := configKeys()
	for _, k := range keys {
		if !inStack[k] {
			t.Errorf("Pulumi.dev.yaml does not set nimbus:%s", k)
		}
		if !strings.Contains(string(readme), "`nimbus:"+k+"`") {
			t.Errorf("README.md does not document nimbus:%s", k)
		}
	}
	for k := range inStack {
		if !slices.Contains(keys, k) {
			t.Errorf("Pulumi.dev.yaml sets nimbus:%s, which the program does not read", k)
		}
	}
	if _, err := ParseConfig(func(k string) (string, bool) {
		m := regexp.MustCompile(`(?m)^  nimbus:` + k + `: (.*)$`).FindStringSubmatch(string(stackFile))
		if m == nil {
			return "", false
		}
		return yamlScalar(m[1]), true
	}); err != nil && !strings.Contains(err.Error(), "allowedCidrs") {
		t.Errorf("Pulumi.dev.yaml does not parse: %v", err)
	}
}

// yamlScalar unquotes the simple scalars Pulumi.dev.yaml uses.
func yamlScalar(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, " #"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return strings.Trim(s, `"`)
}
