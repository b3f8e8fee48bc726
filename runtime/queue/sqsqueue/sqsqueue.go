// Package sqsqueue is a queue.Queue on Amazon SQS (standard queues).
//
// # Semantics
//
// Delivery is at least once, as queue.Queue documents. Receive long-polls (up
// to SQS's 20 s limit) so that idle consumers cost few requests. Messages
// that are received too often move to the queue's dead-letter queue; that is
// the queue's redrive policy, set by the infrastructure, not by this package.
// Depth comes from the queue's approximate attributes and lags by up to a
// minute on real SQS.
//
// # Errors
//
// SQS errors carry Nimbus codes: a missing queue or a stale receipt handle is
// nimbus.ENOTFOUND, a malformed request nimbus.EINVALID, and throttling, 5xx
// answers and unreachable endpoints nimbus.EUNAVAILABLE. Transient failures
// were already retried by the SDK client (see awsclients); this package never
// retries on its own.
package sqsqueue

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/awsclients/awserr"
	"github.com/nimbus-ml/nimbus/runtime/queue"
)

// API is the part of *sqs.Client a Queue uses.
type API interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

var _ API = (*sqs.Client)(nil)

// Limits SQS sets on every queue.
const (
	// MaxWait is the longest long poll SQS allows.
	MaxWait = 20 * time.Second
	// MaxVisibility is the longest visibility timeout SQS allows.
	MaxVisibility = 12 * time.Hour
	// MaxBatch is the most messages one receive or batch delete handles.
	MaxBatch = 10
)

// Options configure a Queue. A nil *Options means the defaults.
type Options struct {
	// Visibility, when positive, hides each received message for this long
	// instead of the queue's own VisibilityTimeout attribute. Leave it zero
	// to let the infrastructure's queue setting rule.
	Visibility time.Duration
}

// Queue is one SQS queue. Its methods are safe for concurrent use.
type Queue struct {
	api  API
	url  string
	opts Options
}

var _ queue.Queue = (*Queue)(nil)

// Open returns the queue at url (as returned by CreateQueue or GetQueueUrl)
// reached through api, usually an *sqs.Client built by awsclients.NewSQS. It
// makes no request; a missing queue shows on first use as nimbus.ENOTFOUND.
func Open(api API, url string, opts *Options) (*Queue, error) {
	if api == nil {
		return nil, nimbus.Errorf(nimbus.EINVALID, "sqsqueue: no SQS client")
	}
	if url == "" {
		return nil, nimbus.Errorf(nimbus.EINVALID, "sqsqueue: the queue URL is empty")
	}
	q := &Queue{api: api, url: url}
	if opts != nil {
		q.opts = *opts
	}
	if q.opts.Visibility < 0 || q.opts.Visibility > MaxVisibility {
		return nil, nimbus.Errorf(nimbus.EINVALID, "sqsqueue: visibility %v is outside 0..%v", q.opts.Visibility, MaxVisibility)
	}
	return q, nil
}

// URL is the queue's URL.
func (q *Queue) URL() string { return q.url }

// codes maps SQS error codes, in both their JSON and Query spellings, to
// Nimbus codes.
var codes = awserr.Codes{
	"QueueDoesNotExist":                                   nimbus.ENOTFOUND,
	"AWS.SimpleQueueService.NonExistentQueue":             nimbus.ENOTFOUND,
	"QueueDeletedRecently":                                nimbus.ENOTFOUND,
	"AWS.SimpleQueueService.QueueDeletedRecently":         nimbus.ENOTFOUND,
	"ReceiptHandleIsInvalid":                              nimbus.ENOTFOUND,
	"MessageNotInflight":                                  nimbus.ENOTFOUND,
	"AWS.SimpleQueueService.MessageNotInflight":           nimbus.ENOTFOUND,
	"InvalidIdFormat":                                     nimbus.EINVALID,
	"InvalidMessageContents":                              nimbus.EINVALID,
	"InvalidAttributeName":                                nimbus.EINVALID,
	"InvalidAttributeValue":                               nimbus.EINVALID,
	"InvalidParameterValue":                               nimbus.EINVALID,
	"BatchEntryIdsNotDistinct":                            nimbus.EINVALID,
	"AWS.SimpleQueueService.BatchEntryIdsNotDistinct":     nimbus.EINVALID,
	"TooManyEntriesInBatchRequest":                        nimbus.EINVALID,
	"AWS.SimpleQueueService.TooManyEntriesInBatchRequest": nimbus.EINVALID,
	"EmptyBatchRequest":                                   nimbus.EINVALID,
	"AWS.SimpleQueueService.EmptyBatchRequest":            nimbus.EINVALID,
	"OverLimit":               nimbus.EBUSY,
	"RequestThrottled":        nimbus.EUNAVAILABLE,
	"KmsThrottled":            nimbus.EUNAVAILABLE,
	"KMS.ThrottlingException": nimbus.EUNAVAILABLE,
}

// Send implements queue.Queue. It blocks for one SQS call (plus SDK retries).
func (q *Queue) Send(ctx context.Context, body []byte) (string, error) {
	out, err := q.api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(q.url),
		MessageBody: aws.String(string(body)),
	})
	if err != nil {
		return "", awserr.Wrap(err, codes, "sending message to SQS")
	}
	return aws.ToString(out.MessageId), nil
}

// Receive implements queue.Queue. wait is rounded up to whole seconds and
// capped at MaxWait; it blocks for that long at most when the queue is empty,
// and returns ctx's error as soon as ctx is done.
func (q *Queue) Receive(ctx context.Context, maxMessages int, wait time.Duration) ([]queue.Message, error) {
	if maxMessages < 1 || maxMessages > MaxBatch {
		return nil, nimbus.Errorf(nimbus.EINVALID, "receive batch size %d is outside 1..%d", maxMessages, MaxBatch)
	}
	in := &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(q.url),
		MaxNumberOfMessages: int32(maxMessages),
		WaitTimeSeconds:     int32(ceilSeconds(min(max(wait, 0), MaxWait))),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
	}
	if q.opts.Visibility > 0 {
		in.VisibilityTimeout = int32(ceilSeconds(q.opts.Visibility))
	}
	out, err := q.api.ReceiveMessage(ctx, in)
	if err != nil {
		return nil, awserr.Wrap(err, codes, "receiving messages from SQS")
	}
	msgs := make([]queue.Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		msgs = append(msgs, toMessage(m))
	}
	return msgs, nil
}

func toMessage(m types.Message) queue.Message {
	msg := queue.Message{
		ID:      aws.ToString(m.MessageId),
		Body:    []byte(aws.ToString(m.Body)),
		Receipt: aws.ToString(m.ReceiptHandle),
	}
	// Both attributes were asked for; a server that omits one leaves the
	// zero value rather than failing the delivery.
	if n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil {
		msg.ReceiveCount = n
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		msg.Sent = time.UnixMilli(ms)
	}
	return msg
}

// ceilSeconds rounds d up so that a caller never waits or hides for less than
// asked.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// Delete implements queue.Queue. SQS accepts a stale receipt handle silently
// (the message stays) or reports it as nimbus.ENOTFOUND; an unknown queue is
// nimbus.ENOTFOUND too.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	if receipt == "" {
		return nimbus.Errorf(nimbus.EINVALID, "deleting message: empty receipt handle")
	}
	_, err := q.api.DeleteMessage(ctx, &sqs.DeleteMessageInput{
		QueueUrl:      aws.String(q.url),
		ReceiptHandle: aws.String(receipt),
	})
	return awserr.Wrap(err, codes, "deleting message from SQS")
}

// DeleteBatch deletes the messages delivered with receipts, MaxBatch per
// request. It tries every receipt and returns the failures joined, each
// naming the receipt's index and carrying its Nimbus code; nil means all were
// deleted.
func (q *Queue) DeleteBatch(ctx context.Context, receipts []string) error {
	var errs []error
	for start := 0; start < len(receipts); start += MaxBatch {
		chunk := receipts[start:min(start+MaxBatch, len(receipts))]
		entries := make([]types.DeleteMessageBatchRequestEntry, len(chunk))
		for i, r := range chunk {
			entries[i] = types.DeleteMessageBatchRequestEntry{
				Id:            aws.String(strconv.Itoa(start + i)),
				ReceiptHandle: aws.String(r),
			}
		}
		out, err := q.api.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{
			QueueUrl: aws.String(q.url),
			Entries:  entries,
		})
		if err != nil {
			errs = append(errs, awserr.Wrap(err, codes, "deleting messages %d to %d from SQS", start, start+len(chunk)-1))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		for _, f := range out.Failed {
			code := codes[aws.ToString(f.Code)]
			if code == "" {
				code = nimbus.EINTERNAL
			}
			errs = append(errs, nimbus.Errorf(code, "deleting message %s from SQS: %s: %s",
				aws.ToString(f.Id), aws.ToString(f.Code), aws.ToString(f.Message)))
		}
	}
	return errors.Join(errs...)
}

// ChangeVisibility implements queue.Queue. d is rounded up to whole seconds
// and must be within 0..MaxVisibility. A stale receipt is nimbus.ENOTFOUND.
func (q *Queue) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	if d < 0 || d > MaxVisibility {
		return nimbus.Errorf(nimbus.EINVALID, "visibility timeout %v is outside 0..%v", d, MaxVisibility)
	}
	_, err := q.api.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(q.url),
		ReceiptHandle:     aws.String(receipt),
		VisibilityTimeout: int32(ceilSeconds(d)),
	})
	return awserr.Wrap(err, codes, "changing message visibility on SQS")
}

// Depth implements queue.Queue from ApproximateNumberOfMessages (visible) and
// ApproximateNumberOfMessagesNotVisible (in flight). Delayed messages are not
// counted: Nimbus never sends any.
func (q *Queue) Depth(ctx context.Context) (queue.Depth, error) {
	out, err := q.api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return queue.Depth{}, awserr.Wrap(err, codes, "reading SQS queue depth")
	}
	var d queue.Depth
	for name, dst := range map[types.QueueAttributeName]*int{
		types.QueueAttributeNameApproximateNumberOfMessages:           &d.Visible,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible: &d.InFlight,
	} {
		v, ok := out.Attributes[string(name)]
		if !ok {
			return queue.Depth{}, nimbus.Errorf(nimbus.EINTERNAL, "reading SQS queue depth: attribute %s missing from the answer", name)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return queue.Depth{}, nimbus.Errorf(nimbus.EINTERNAL, "reading SQS queue depth: attribute %s=%q is not a count", name, v)
		}
		*dst = n
	}
	return d, nil
}
