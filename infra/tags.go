package main

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

// tagged returns the stack's common tags plus a Name tag.
func tagged(common map[string]string, name string) pulumi.StringMap {
	out := pulumi.StringMap{"Name": pulumi.String(name)}
	for k, v := range common {
		out[k] = pulumi.String(v)
	}
	return out
}
