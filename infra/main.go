// Command infra is Nimbus's Pulumi program: `pulumi up` at the repository
// root stands the service up on AWS, `pulumi destroy` removes it. It reads
// the stack's configuration, declares the components (Deploy) and exports
// what clients and operators need. See "Deploy on AWS" in README.md.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		cfg, err := ParseConfig(func(key string) (string, bool) {
			return ctx.GetConfig(ConfigNamespace + ":" + key)
		})
		if err != nil {
			return fmt.Errorf("stack configuration:\n%w", err)
		}
		if cfg.RepoRoot, err = repoRoot(ctx.RootDirectory()); err != nil {
			return err
		}
		d, err := Deploy(ctx, cfg)
		if err != nil {
			return err
		}
		ctx.Export("endpoint", d.Web.Endpoint)
		ctx.Export("webInstanceId", d.Web.Instance.ID())
		ctx.Export("inputBucket", d.Storage.Input.Bucket)
		ctx.Export("outputBucket", d.Storage.Output.Bucket)
		ctx.Export("inputQueueUrl", d.Queues.Input.Url)
		ctx.Export("outputQueueUrl", d.Queues.Output.Url)
		ctx.Export("deadLetterQueueUrl", d.Queues.DeadLetter.Url)
		ctx.Export("workerGroup", d.Workers.Group.Name)
		ctx.Export("amiId", d.Image.AmiID)
		ctx.Export("region", pulumi.String(d.Region))
		return nil
	})
}

// repoRoot is the directory holding Pulumi.yaml: the project root Pulumi
// reports, or else the working directory or its parent (the program runs
// from infra/).
func repoRoot(fromPulumi string) (string, error) {
	if fromPulumi != "" {
		return fromPulumi, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for _, dir := range []string{wd, filepath.Dir(wd)} {
		if _, err := os.Stat(filepath.Join(dir, "Pulumi.yaml")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("cannot find Pulumi.yaml in %s or its parent", wd)
}
