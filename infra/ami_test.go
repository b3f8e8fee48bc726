package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// amiDir is the Packer template's directory, from infra/.
const amiDir = "../ami"

// parseTemplates parses every ami/*.pkr.hcl file.
func parseTemplates(t *testing.T) map[string]*hclsyntax.Body {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(amiDir, "*.pkr.hcl"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no Packer templates in %s: %v", amiDir, err)
	}
	p := hclparse.NewParser()
	out := map[string]*hclsyntax.Body{}
	for _, path := range paths {
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", path, diags)
		}
		out[filepath.Base(path)] = f.Body.(*hclsyntax.Body)
	}
	return out
}

// blocks returns the blocks of typ with the given leading labels.
func blocks(body *hclsyntax.Body, typ string, labels ...string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ && len(b.Labels) >= len(labels) && slices.Equal(b.Labels[:len(labels)], labels) {
			out = append(out, b)
		}
	}
	return out
}

func oneBlock(t *testing.T, body *hclsyntax.Body, typ string, labels ...string) *hclsyntax.Block {
	t.Helper()
	bs := blocks(body, typ, labels...)
	if len(bs) != 1 {
		t.Fatalf("want one %s %v block, got %d", typ, labels, len(bs))
	}
	return bs[0]
}

// value evaluates an attribute with the template's variables and locals
// stubbed out, so that literals and simple templates can be compared.
func value(t *testing.T, body *hclsyntax.Body, name string) cty.Value {
	t.Helper()
	attr, ok := body.Attributes[name]
	if !ok {
		t.Fatalf("no attribute %q", name)
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"var": cty.ObjectVal(map[string]cty.Value{
			"build_dir":   cty.StringVal("build"),
			"region":      cty.StringVal("us-east-1"),
			"source_hash": cty.StringVal("hash"),
		}),
	}}
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("evaluating %s: %v", name, diags)
	}
	return v
}

func str(t *testing.T, body *hclsyntax.Body, name string) string {
	t.Helper()
	v := value(t, body, name)
	if v.Type() != cty.String {
		t.Fatalf("%s is %s, not a string", name, v.Type().FriendlyName())
	}
	return v.AsString()
}

func strs(t *testing.T, body *hclsyntax.Body, name string) []string {
	t.Helper()
	var out []string
	for _, v := range value(t, body, name).AsValueSlice() {
		out = append(out, v.AsString())
	}
	return out
}

func TestPackerTemplate(t *testing.T) {
	files := parseTemplates(t)

	// Packer 1.6.6 rejects these; they must live in plugins.pkr.hcl only.
	for name, body := range files {
		if name == "plugins.pkr.hcl" {
			continue
		}
		if len(blocks(body, "packer")) > 0 || len(blocks(body, "data")) > 0 {
			t.Errorf("%s has a packer or data block; Debian's Packer 1.6.6 cannot validate it", name)
		}
	}
	plugins, ok := files["plugins.pkr.hcl"]
	if !ok {
		t.Fatal("no plugins.pkr.hcl")
	}
	required := oneBlock(t, oneBlock(t, plugins, "packer").Body, "required_plugins").Body
	amazon := value(t, required, "amazon")
	if src := amazon.GetAttr("source").AsString(); src != "github.com/hashicorp/amazon" {
		t.Errorf("amazon plugin source %q", src)
	}

	tmpl, ok := files["nimbus.pkr.hcl"]
	if !ok {
		t.Fatal("no nimbus.pkr.hcl")
	}
	src := oneBlock(t, tmpl, "source", "amazon-ebs", "nimbus").Body
	filter := oneBlock(t, src, "source_ami_filter").Body
	if owners := strs(t, filter, "owners"); !slices.Equal(owners, []string{"099720109477"}) {
		t.Errorf("source AMI owners %v, want Canonical's 099720109477", owners)
	}
	if v := value(t, filter, "most_recent"); !v.True() {
		t.Errorf("most_recent is not true")
	}
	filters := value(t, filter, "filters")
	if name := filters.GetAttr("name").AsString(); !strings.Contains(name, "ubuntu-noble-24.04-amd64-server") {
		t.Errorf("source AMI name filter %q is not Ubuntu 24.04 amd64", name)
	}
	if arch := filters.GetAttr("architecture").AsString(); arch != "x86_64" {
		t.Errorf("architecture %q", arch)
	}
	if got := str(t, src, "ssh_username"); got != "ubuntu" {
		t.Errorf("ssh_username %q", got)
	}
	if got := str(t, src, "region"); got != "us-east-1" {
		t.Errorf("region does not come from var.region: %q", got)
	}

	build := oneBlock(t, tmpl, "build").Body
	if got := strs(t, build, "sources"); !slices.Equal(got, []string{"source.amazon-ebs.nimbus"}) {
		t.Errorf("build sources %v", got)
	}
	uploads := map[string]string{}
	for _, p := range blocks(build, "provisioner", "file") {
		dest := str(t, p.Body, "destination")
		if _, ok := p.Body.Attributes["source"]; ok {
			uploads[str(t, p.Body, "source")] = dest
		}
		if _, ok := p.Body.Attributes["sources"]; ok {
			for _, s := range strs(t, p.Body, "sources") {
				uploads[s] = dest
			}
		}
	}
	for src, dest := range map[string]string{
		"build/nimbus":          "/tmp/nimbus",
		"build/assets/":         "/tmp/nimbus-assets",
		"nimbus-web.service":    "/tmp/",
		"nimbus-scaler.service": "/tmp/",
		"nimbus-worker.service": "/tmp/",
	} {
		if uploads[src] != dest {
			t.Errorf("upload of %s goes to %q, want %q (uploads: %v)", src, uploads[src], dest, uploads)
		}
	}
	shell := oneBlock(t, build, "provisioner", "shell").Body
	if got := str(t, shell, "script"); got != "install.sh" {
		t.Errorf("shell provisioner runs %q", got)
	}
	manifest := oneBlock(t, build, "post-processor", "manifest").Body
	if got := str(t, manifest, "output"); got != "build/manifest.json" {
		t.Errorf("manifest goes to %q; build.sh reads build/manifest.json", got)
	}
	if v := value(t, manifest, "strip_path"); !v.True() {
		t.Errorf("manifest strip_path is not true")
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSystemdUnits(t *testing.T) {
	for unit, exec := range map[string]string{
		"nimbus-web.service":    "nimbus web",
		"nimbus-scaler.service": "nimbus scaler",
		"nimbus-worker.service": "nimbus worker",
	} {
		text := read(t, filepath.Join(amiDir, unit))
		for _, line := range []string{
			"ExecStart=/usr/local/bin/" + exec,
			"Restart=on-failure",
			"EnvironmentFile=/etc/nimbus/env",
			"User=nimbus",
			"NoNewPrivileges=yes",
			"ProtectSystem=strict",
			"ProtectHome=yes",
			"PrivateTmp=yes",
			"Environment=NIMBUS_ASSETS=/opt/nimbus/assets",
			"WantedBy=multi-user.target",
		} {
			if !strings.Contains(text, "\n"+line+"\n") {
				t.Errorf("%s lacks %q", unit, line)
			}
		}
	}
	worker := read(t, filepath.Join(amiDir, "nimbus-worker.service"))
	for _, line := range []string{"KillSignal=SIGTERM", "TimeoutStopSec=300"} {
		if !strings.Contains(worker, "\n"+line+"\n") {
			t.Errorf("nimbus-worker.service lacks %q", line)
		}
	}
}

func TestBuildScripts(t *testing.T) {
	build := read(t, filepath.Join(amiDir, "build.sh"))
	for _, want := range []string{
		"go run ./runtime/cmd/nimbus assets --out",
		"CGO_ENABLED=1 GOOS=linux GOARCH=amd64 go build",
		"./runtime/cmd/nimbus",
		"packer build",
		"manifest.json",
	} {
		if !strings.Contains(build, want) {
			t.Errorf("build.sh lacks %q", want)
		}
	}
	deregister := read(t, filepath.Join(amiDir, "deregister.sh"))
	for _, want := range []string{"PULUMI_COMMAND_STDOUT", "deregister-image", "delete-snapshot"} {
		if !strings.Contains(deregister, want) {
			t.Errorf("deregister.sh lacks %q", want)
		}
	}
	for _, script := range []string{"build.sh", "deregister.sh", "install.sh"} {
		info, err := os.Stat(filepath.Join(amiDir, script))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", script)
		}
	}
}
