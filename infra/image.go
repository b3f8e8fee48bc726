package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Image is the AMI every instance boots: either the configured one, or one
// baked by ami/build.sh (Packer) whenever runtime/ or ami/ change.
type Image struct {
	pulumi.ResourceState

	// AmiID is the image id.
	AmiID pulumi.StringOutput `pulumi:"amiId"`
	// SourceHash is the content hash the bake was triggered by ("" when the
	// AMI came from config).
	SourceHash string
}

// ImageArgs configures Image.
type ImageArgs struct {
	// AmiID skips the bake when set.
	AmiID string
	// RepoRoot holds runtime/ and ami/.
	RepoRoot string
	// Region the AMI is registered in.
	Region string
}

// BakeSources are the directories (relative to the repository root) and
// files whose content triggers a new bake.
var BakeSources = []string{"runtime", "ami", "go.mod", "go.sum"}

// NewImage declares the AMI.
func NewImage(ctx *pulumi.Context, name string, args *ImageArgs, opts ...pulumi.ResourceOption) (*Image, error) {
	img := &Image{}
	if err := ctx.RegisterComponentResource("nimbus:infra:Image", name, img, opts...); err != nil {
		return nil, err
	}
	if args.AmiID != "" {
		img.AmiID = pulumi.String(args.AmiID).ToStringOutput()
		return img, ctx.RegisterResourceOutputs(img, pulumi.Map{"amiId": img.AmiID})
	}

	hash, err := SourceHash(args.RepoRoot, BakeSources)
	if err != nil {
		return nil, fmt.Errorf("hashing the AMI's sources: %w", err)
	}
	img.SourceHash = hash
	// build.sh prints only Packer's manifest on stdout (its logs go to
	// stderr); deregister.sh reads the manifest back from
	// PULUMI_COMMAND_STDOUT to remove the AMI and its snapshots on replace
	// and destroy.
	bake, err := local.NewCommand(ctx, name+"-bake", &local.CommandArgs{
		Dir:    pulumi.String(args.RepoRoot),
		Create: pulumi.String("ami/build.sh"),
		Delete: pulumi.String("ami/deregister.sh"),
		Environment: pulumi.StringMap{
			"NIMBUS_AMI_REGION":  pulumi.String(args.Region),
			"NIMBUS_SOURCE_HASH": pulumi.String(hash),
		},
		// A new hash or region replaces the command: bake the new AMI,
		// then delete the old one.
		Triggers: pulumi.Array{pulumi.String(hash), pulumi.String(args.Region)},
	}, pulumi.Parent(img))
	if err != nil {
		return nil, err
	}
	img.AmiID = bake.Stdout.ApplyT(func(manifest string) (string, error) {
		return AMIFromManifest([]byte(manifest), args.Region)
	}).(pulumi.StringOutput)
	return img, ctx.RegisterResourceOutputs(img, pulumi.Map{
		"amiId":      img.AmiID,
		"sourceHash": pulumi.String(hash),
	})
}

// SourceHash hashes the named files and directory trees under root: each
// regular file's slash-separated relative path and content, in lexical
// order. Build output (ami/build), tests and test data are left out, so
// only changes that alter the image trigger a bake.
func SourceHash(root string, paths []string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		err := filepath.WalkDir(filepath.Join(root, p), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if rel == "ami/build" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && rel != "." {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || strings.HasSuffix(rel, "_test.go") || strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Fprintf(h, "%s\x00", rel)
			if _, err := io.Copy(h, f); err != nil {
				return fmt.Errorf("reading %s: %w", rel, err)
			}
			h.Write([]byte{0})
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// packerManifest is what Packer's "manifest" post-processor writes.
type packerManifest struct {
	Builds []struct {
		Name          string `json:"name"`
		ArtifactID    string `json:"artifact_id"`
		PackerRunUUID string `json:"packer_run_uuid"`
	} `json:"builds"`
	LastRunUUID string `json:"last_run_uuid"`
}

// AMIFromManifest returns the AMI id the last Packer run registered in
// region. artifact_id reads "region:ami-…[,region:ami-…]".
func AMIFromManifest(manifest []byte, region string) (string, error) {
	var m packerManifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return "", fmt.Errorf("reading Packer's manifest: %w", err)
	}
	for i := len(m.Builds) - 1; i >= 0; i-- {
		b := m.Builds[i]
		if m.LastRunUUID != "" && b.PackerRunUUID != m.LastRunUUID {
			continue
		}
		for _, artifact := range strings.Split(b.ArtifactID, ",") {
			r, id, ok := strings.Cut(strings.TrimSpace(artifact), ":")
			if ok && r == region && amiIDPattern.MatchString(id) {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("Packer's manifest names no AMI in %s from its last run", region)
}
