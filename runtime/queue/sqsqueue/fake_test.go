package sqsqueue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/queue"
	"github.com/nimbus-ml/nimbus/runtime/queue/sqsqueue"
)

// fakeAPI is a scripted sqsqueue.API: each method calls its Fn field, and
// panics if a test did not expect the call.
type fakeAPI struct {
	SendMessageFn             func(*sqs.SendMessageInput) (*sqs.SendMessageOutput, error)
	ReceiveMessageFn          func(*sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageFn           func(*sqs.DeleteMessageInput) (*sqs.DeleteMessageOutput, error)
	DeleteMessageBatchFn      func(*sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityFn func(*sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueAttributesFn      func(*sqs.GetQueueAttributesInput) (*sqs.GetQueueAttributesOutput, error)
}

func (f *fakeAPI) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return f.SendMessageFn(in)
}

func (f *fakeAPI) ReceiveMessage(_ context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	return f.ReceiveMessageFn(in)
}

func (f *fakeAPI) DeleteMessage(_ context.Context, in *sqs.DeleteMessageInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	return f.DeleteMessageFn(in)
}

func (f *fakeAPI) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	return f.DeleteMessageBatchFn(in)
}

func (f *fakeAPI) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return f.ChangeMessageVisibilityFn(in)
}

func (f *fakeAPI) GetQueueAttributes(_ context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return f.GetQueueAttributesFn(in)
}

const fakeURL = "https://sqs.eu-west-1.amazonaws.com/123456789012/nimbus-jobs"

func TestReceiveRequestAndMapping(t *testing.T) {
	t.Parallel()
	sent := time.UnixMilli(1767225600123)
	tests := []struct {
		name     string
		opts     *sqsqueue.Options
		wait     time.Duration
		wantWait int32
		wantVis  int32
	}{
		{"sub-second wait rounds up", nil, 300 * time.Millisecond, 1, 0},
		{"long wait capped at 20s", nil, time.Minute, 20, 0},
		{"no wait is a short poll", nil, 0, 0, 0},
		{"visibility override", &sqsqueue.Options{Visibility: 90 * time.Second}, 5 * time.Second, 5, 90},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{ReceiveMessageFn: func(in *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
				if in.WaitTimeSeconds != tc.wantWait || in.VisibilityTimeout != tc.wantVis || in.MaxNumberOfMessages != 7 {
					t.Errorf("ReceiveMessage wait %d visibility %d max %d, want %d %d 7",
						in.WaitTimeSeconds, in.VisibilityTimeout, in.MaxNumberOfMessages, tc.wantWait, tc.wantVis)
				}
				for _, a := range []types.MessageSystemAttributeName{"ApproximateReceiveCount", "SentTimestamp"} {
					if !slices.Contains(in.MessageSystemAttributeNames, a) {
						t.Errorf("ReceiveMessage does not ask for %s", a)
					}
				}
				return &sqs.ReceiveMessageOutput{Messages: []types.Message{{
					MessageId: aws.String("m-1"), Body: aws.String(`{"id":"x"}`), ReceiptHandle: aws.String("r-3"),
					Attributes: map[string]string{
						"ApproximateReceiveCount": "3",
						"SentTimestamp":           strconv.FormatInt(sent.UnixMilli(), 10),
					},
				}}}, nil
			}}
			q, err := sqsqueue.Open(api, fakeURL, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := q.Receive(context.Background(), 7, tc.wait)
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			want := queue.Message{ID: "m-1", Body: []byte(`{"id":"x"}`), Receipt: "r-3", ReceiveCount: 3, Sent: sent}
			if len(msgs) != 1 || msgs[0].ID != want.ID || string(msgs[0].Body) != string(want.Body) ||
				msgs[0].Receipt != want.Receipt || msgs[0].ReceiveCount != want.ReceiveCount || !msgs[0].Sent.Equal(want.Sent) {
				t.Fatalf("Receive = %+v, want [%+v]", msgs, want)
			}
		})
	}
}

func TestReceiveRejectsBatchSize(t *testing.T) {
	t.Parallel()
	q, err := sqsqueue.Open(&fakeAPI{}, fakeURL, nil) // any call would panic on a nil Fn
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 11} {
		if _, err := q.Receive(context.Background(), n, time.Second); nimbus.ErrorCode(err) != nimbus.EINVALID {
			t.Errorf("Receive(max %d) error %v, want code %q", n, err, nimbus.EINVALID)
		}
	}
}

func TestDepthMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		attrs    map[string]string
		want     queue.Depth
		wantCode string
	}{
		{"both counts", map[string]string{"ApproximateNumberOfMessages": "4", "ApproximateNumberOfMessagesNotVisible": "2"}, queue.Depth{Visible: 4, InFlight: 2}, ""},
		{"missing attribute", map[string]string{"ApproximateNumberOfMessages": "4"}, queue.Depth{}, nimbus.EINTERNAL},
		{"not a number", map[string]string{"ApproximateNumberOfMessages": "x", "ApproximateNumberOfMessagesNotVisible": "0"}, queue.Depth{}, nimbus.EINTERNAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{GetQueueAttributesFn: func(*sqs.GetQueueAttributesInput) (*sqs.GetQueueAttributesOutput, error) {
				return &sqs.GetQueueAttributesOutput{Attributes: tc.attrs}, nil
			}}
			q, err := sqsqueue.Open(api, fakeURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := q.Depth(context.Background())
			if nimbus.ErrorCode(err) != tc.wantCode || got != tc.want {
				t.Fatalf("Depth = %+v, %v; want %+v with code %q", got, err, tc.want, tc.wantCode)
			}
		})
	}
}

func TestDeleteBatch(t *testing.T) {
	t.Parallel()
	var sizes []int
	api := &fakeAPI{DeleteMessageBatchFn: func(in *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error) {
		sizes = append(sizes, len(in.Entries))
		out := &sqs.DeleteMessageBatchOutput{}
		for _, e := range in.Entries {
			if aws.ToString(e.ReceiptHandle) == "r-12" {
				out.Failed = append(out.Failed, types.BatchResultErrorEntry{
					Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid"), Message: aws.String("stale"), SenderFault: true,
				})
				continue
			}
			out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
		}
		return out, nil
	}}
	q, err := sqsqueue.Open(api, fakeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	receipts := make([]string, 23)
	for i := range receipts {
		receipts[i] = fmt.Sprintf("r-%d", i)
	}
	err = q.DeleteBatch(context.Background(), receipts)
	if !slices.Equal(sizes, []int{10, 10, 3}) {
		t.Errorf("batch sizes %v, want [10 10 3]", sizes)
	}
	if nimbus.ErrorCode(err) != nimbus.ENOTFOUND {
		t.Errorf("DeleteBatch error %v, want code %q for the stale receipt", err, nimbus.ENOTFOUND)
	}
	if err := q.DeleteBatch(context.Background(), receipts[:5]); err != nil {
		t.Errorf("DeleteBatch of good receipts: %v", err)
	}
}

func TestTypedErrorCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"stale receipt", &types.ReceiptHandleIsInvalid{Message: aws.String("stale")}, nimbus.ENOTFOUND},
		{"not in flight", &types.MessageNotInflight{}, nimbus.ENOTFOUND},
		{"queue gone", &types.QueueDoesNotExist{}, nimbus.ENOTFOUND},
		{"too many in flight", &types.OverLimit{}, nimbus.EBUSY},
		{"throttled", &types.RequestThrottled{}, nimbus.EUNAVAILABLE},
		{"bad receipt format", &types.InvalidIdFormat{}, nimbus.EINVALID},
		{"unexpected", errors.New("boom"), nimbus.EINTERNAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{
				DeleteMessageFn: func(*sqs.DeleteMessageInput) (*sqs.DeleteMessageOutput, error) { return nil, tc.err },
				ChangeMessageVisibilityFn: func(*sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error) {
					return nil, tc.err
				},
			}
			q, err := sqsqueue.Open(api, fakeURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = q.Delete(context.Background(), "r")
			if got := nimbus.ErrorCode(err); got != tc.want {
				t.Errorf("Delete error %v has code %q, want %q", err, got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("Delete error %v does not wrap the SDK error", err)
			}
			if got := nimbus.ErrorCode(q.ChangeVisibility(context.Background(), "r", time.Minute)); got != tc.want {
				t.Errorf("ChangeVisibility error code %q, want %q", got, tc.want)
			}
		})
	}
}
