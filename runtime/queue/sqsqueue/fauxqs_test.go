package sqsqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/awsclients"
	"github.com/nimbus-ml/nimbus/runtime/queue/queuetest"
	"github.com/nimbus-ml/nimbus/runtime/queue/sqsqueue/fauxqstest"
)

// jsonClient builds the SQS client exactly as production does, on SQS's JSON
// protocol (the SDK's default), pointed at endpoint with dummy credentials.
func jsonClient(endpoint string) *sqs.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
	}
	return awsclients.NewSQS(cfg, awsclients.Config{Region: "us-east-1", SQSEndpoint: endpoint})
}

// fauxqsHarness makes queues on fauxqs the way the goaws harness does, with
// the queue's VisibilityTimeout and RedrivePolicy set on CreateQueue, and
// knows fauxqs's own gaps.
type fauxqsHarness struct {
	harness
}

// Skip skips nothing: fauxqs 2.4.1 departs from documented SQS behaviour in
// no way a case sees. Its one known gap, that a message whose visibility
// timeout expired stays counted as not visible until the next ReceiveMessage
// on the queue, escapes Depth, which lets no timeout expire.
func (fauxqsHarness) Skip(string) string { return "" }

// TestFauxqs runs the contract on fauxqs over the JSON protocol that
// production speaks; one fauxqs process serves every subtest.
func TestFauxqs(t *testing.T) {
	t.Parallel()
	endpoint := fauxqstest.Start(t)
	api := jsonClient(endpoint)

	t.Run("Conformance", func(t *testing.T) {
		h := fauxqsHarness{harness{api: api}}
		queuetest.RunConformance(t, func(*testing.T) queuetest.Harness { return h })
	})

	// The JSON protocol spells error codes differently from Query
	// (QueueDoesNotExist, not AWS.SimpleQueueService.NonExistentQueue).
	t.Run("MissingQueueNotFound", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		q := mustOpen(t, api, endpoint+"/000000000000/"+uniqueName(t, "missing"))
		if _, err := q.Send(ctx, []byte("x")); nimbus.ErrorCode(err) != nimbus.ENOTFOUND {
			t.Errorf("Send error %v has code %q, want %q", err, nimbus.ErrorCode(err), nimbus.ENOTFOUND)
		}
		if _, err := q.Depth(ctx); nimbus.ErrorCode(err) != nimbus.ENOTFOUND {
			t.Errorf("Depth error %v has code %q, want %q", err, nimbus.ErrorCode(err), nimbus.ENOTFOUND)
		}
	})
}
