package main

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sqs"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Queues are the job queue (claim checks of uploaded images), its
// dead-letter queue, and the result queue the web tier reads.
type Queues struct {
	pulumi.ResourceState

	Input      *sqs.Queue
	Output     *sqs.Queue
	DeadLetter *sqs.Queue
}

// QueuesArgs configures Queues.
type QueuesArgs struct {
	// VisibilityTimeoutSeconds is the worst-case processing time of one job.
	VisibilityTimeoutSeconds int
	// MaxReceiveCount receives before a job moves to the dead-letter queue.
	MaxReceiveCount int
	Tags            map[string]string
}

// Queue settings that are not configuration.
const (
	// longPollSeconds is SQS's maximum receive wait: fewer empty receives.
	longPollSeconds = 20
	// inputMaxMessageBytes bounds job messages, which are claim checks under
	// 1 KiB; SQS's minimum is 1024.
	inputMaxMessageBytes = 4 * 1024
	// outputMaxMessageBytes bounds result messages (a status and top labels).
	outputMaxMessageBytes = 16 * 1024
	// deadLetterRetentionSeconds keeps failed jobs for SQS's maximum, 14 days.
	deadLetterRetentionSeconds = 14 * 24 * 3600
	// outputVisibilitySeconds is how long the web tier holds a result
	// message while it records it.
	outputVisibilitySeconds = 30
)

// redrivePolicy is SQS's RedrivePolicy attribute.
type redrivePolicy struct {
	DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	MaxReceiveCount     int    `json:"maxReceiveCount"`
}

// NewQueues declares the queues. All use SSE-SQS (SQS-managed keys), which
// needs no KMS permissions.
func NewQueues(ctx *pulumi.Context, name string, args *QueuesArgs, opts ...pulumi.ResourceOption) (*Queues, error) {
	q := &Queues{}
	if err := ctx.RegisterComponentResource("nimbus:infra:Queues", name, q, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(q)

	dlq, err := sqs.NewQueue(ctx, name+"-dead-letter", &sqs.QueueArgs{
		SqsManagedSseEnabled:     pulumi.Bool(true),
		MessageRetentionSeconds:  pulumi.Int(deadLetterRetentionSeconds),
		ReceiveWaitTimeSeconds:   pulumi.Int(longPollSeconds),
		VisibilityTimeoutSeconds: pulumi.Int(args.VisibilityTimeoutSeconds),
		MaxMessageSize:           pulumi.Int(inputMaxMessageBytes),
		Tags:                     tagged(args.Tags, name+"-dead-letter"),
	}, parent)
	if err != nil {
		return nil, err
	}
	redrive := dlq.Arn.ApplyT(func(arn string) (string, error) {
		b, err := json.Marshal(redrivePolicy{DeadLetterTargetArn: arn, MaxReceiveCount: args.MaxReceiveCount})
		if err != nil {
			return "", fmt.Errorf("marshalling redrive policy: %w", err)
		}
		return string(b), nil
	}).(pulumi.StringOutput)
	input, err := sqs.NewQueue(ctx, name+"-input", &sqs.QueueArgs{
		SqsManagedSseEnabled:     pulumi.Bool(true),
		VisibilityTimeoutSeconds: pulumi.Int(args.VisibilityTimeoutSeconds),
		ReceiveWaitTimeSeconds:   pulumi.Int(longPollSeconds),
		MaxMessageSize:           pulumi.Int(inputMaxMessageBytes),
		RedrivePolicy:            redrive,
		Tags:                     tagged(args.Tags, name+"-input"),
	}, parent)
	if err != nil {
		return nil, err
	}
	output, err := sqs.NewQueue(ctx, name+"-output", &sqs.QueueArgs{
		SqsManagedSseEnabled:     pulumi.Bool(true),
		VisibilityTimeoutSeconds: pulumi.Int(outputVisibilitySeconds),
		ReceiveWaitTimeSeconds:   pulumi.Int(longPollSeconds),
		MaxMessageSize:           pulumi.Int(outputMaxMessageBytes),
		Tags:                     tagged(args.Tags, name+"-output"),
	}, parent)
	if err != nil {
		return nil, err
	}

	q.Input, q.Output, q.DeadLetter = input, output, dlq
	return q, ctx.RegisterResourceOutputs(q, pulumi.Map{
		"inputUrl":      input.Url,
		"outputUrl":     output.Url,
		"deadLetterUrl": dlq.Url,
	})
}
