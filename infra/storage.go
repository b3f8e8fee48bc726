package main

import (
	"github.com/nimbus-ml/nimbus/infra/policy"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Storage holds the two private buckets: uploaded images (input) and
// results (output).
type Storage struct {
	pulumi.ResourceState

	Input  *s3.BucketV2
	Output *s3.BucketV2
}

// StorageArgs configures Storage.
type StorageArgs struct {
	// RetentionDays expires objects; 0 keeps them.
	RetentionDays int
	// ForceDestroy lets `pulumi destroy` delete non-empty buckets.
	ForceDestroy bool
	Tags         map[string]string
}

// NewStorage declares both buckets.
func NewStorage(ctx *pulumi.Context, name string, args *StorageArgs, opts ...pulumi.ResourceOption) (*Storage, error) {
	s := &Storage{}
	if err := ctx.RegisterComponentResource("nimbus:infra:Storage", name, s, opts...); err != nil {
		return nil, err
	}
	var err error
	if s.Input, err = newPrivateBucket(ctx, name+"-input", args, pulumi.Parent(s)); err != nil {
		return nil, err
	}
	if s.Output, err = newPrivateBucket(ctx, name+"-output", args, pulumi.Parent(s)); err != nil {
		return nil, err
	}
	return s, ctx.RegisterResourceOutputs(s, pulumi.Map{
		"inputBucket":  s.Input.Bucket,
		"outputBucket": s.Output.Bucket,
	})
}

// newPrivateBucket declares a bucket with every public access block on,
// SSE-S3 by default, ACLs disabled, TLS required and optional expiry.
func newPrivateBucket(ctx *pulumi.Context, name string, args *StorageArgs, parent pulumi.ResourceOption) (*s3.BucketV2, error) {
	bucket, err := s3.NewBucketV2(ctx, name, &s3.BucketV2Args{
		ForceDestroy: pulumi.Bool(args.ForceDestroy),
		Tags:         tagged(args.Tags, name),
	}, parent)
	if err != nil {
		return nil, err
	}
	block, err := s3.NewBucketPublicAccessBlock(ctx, name, &s3.BucketPublicAccessBlockArgs{
		Bucket:                bucket.ID(),
		BlockPublicAcls:       pulumi.Bool(true),
		BlockPublicPolicy:     pulumi.Bool(true),
		IgnorePublicAcls:      pulumi.Bool(true),
		RestrictPublicBuckets: pulumi.Bool(true),
	}, parent)
	if err != nil {
		return nil, err
	}
	if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, name, &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket: bucket.ID(),
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
			ApplyServerSideEncryptionByDefault: s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
				SseAlgorithm: pulumi.String("AES256"),
			},
		}},
	}, parent); err != nil {
		return nil, err
	}
	if _, err := s3.NewBucketOwnershipControls(ctx, name, &s3.BucketOwnershipControlsArgs{
		Bucket: bucket.ID(),
		Rule:   s3.BucketOwnershipControlsRuleArgs{ObjectOwnership: pulumi.String("BucketOwnerEnforced")},
	}, parent); err != nil {
		return nil, err
	}
	if args.RetentionDays > 0 {
		if _, err := s3.NewBucketLifecycleConfigurationV2(ctx, name, &s3.BucketLifecycleConfigurationV2Args{
			Bucket: bucket.ID(),
			Rules: s3.BucketLifecycleConfigurationV2RuleArray{s3.BucketLifecycleConfigurationV2RuleArgs{
				Id:     pulumi.String("expire"),
				Status: pulumi.String("Enabled"),
				Filter: s3.BucketLifecycleConfigurationV2RuleFilterArgs{Prefix: pulumi.String("")},
				Expiration: s3.BucketLifecycleConfigurationV2RuleExpirationArgs{
					Days: pulumi.Int(args.RetentionDays),
				},
				AbortIncompleteMultipartUpload: s3.BucketLifecycleConfigurationV2RuleAbortIncompleteMultipartUploadArgs{
					DaysAfterInitiation: pulumi.Int(1),
				},
			}},
		}, parent); err != nil {
			return nil, err
		}
	}
	tlsOnly := bucket.Arn.ApplyT(func(arn string) (string, error) {
		return policy.Document{Version: policy.Version2012, Statement: []policy.Statement{{
			Sid:       "DenyInsecureTransport",
			Effect:    "Deny",
			Principal: map[string]policy.Strings{"AWS": {"*"}},
			Action:    policy.Strings{"s3:*"},
			Resource:  policy.Strings{arn, arn + "/*"},
			Condition: map[string]map[string]policy.Strings{"Bool": {"aws:SecureTransport": {"false"}}},
		}}}.JSON()
	}).(pulumi.StringOutput)
	// The policy waits for the public access block so that S3 never sees
	// a bucket policy on a bucket without one.
	if _, err := s3.NewBucketPolicy(ctx, name, &s3.BucketPolicyArgs{
		Bucket: bucket.ID(),
		Policy: tlsOnly,
	}, parent, pulumi.DependsOn([]pulumi.Resource{block})); err != nil {
		return nil, err
	}
	return bucket, nil
}
