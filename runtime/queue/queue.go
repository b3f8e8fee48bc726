// Package queue defines the message queue Nimbus moves jobs and results
// through, with SQS semantics: at-least-once delivery, a visibility timeout,
// receipt handles that change on every delivery, and dead-lettering after a
// number of receives.
//
// Implementations: memqueue (in process) and sqsqueue (Amazon SQS). Both pass
// the conformance suite in queuetest.
//
// # Delivery semantics
//
// A received message is hidden for the visibility timeout and comes back if
// it is not deleted in time. Consumers must therefore be idempotent. Only the
// receipt handle of the latest delivery deletes a message.
package queue

import (
	"context"
	"time"
)

// Message is one delivery of a message.
type Message struct {
	// ID is stable across deliveries of the same message.
	ID string
	// Body is the payload as sent.
	Body []byte
	// Receipt identifies this delivery; it is needed to delete the message or
	// change its visibility, and it is stale once the message is redelivered.
	Receipt string
	// ReceiveCount counts deliveries, this one included.
	ReceiveCount int
	// Sent is when the message was first sent.
	Sent time.Time
}

// Depth is an approximate count of a queue's messages.
type Depth struct {
	// Visible messages wait to be received.
	Visible int
	// InFlight messages were received and are neither deleted nor expired.
	InFlight int
}

// Total is what is still to be done: waiting plus being worked on.
func (d Depth) Total() int { return d.Visible + d.InFlight }

// Queue is a handle on one queue. All methods are safe for concurrent use.
type Queue interface {
	// Send enqueues body and returns the new message's ID.
	Send(ctx context.Context, body []byte) (string, error)

	// Receive returns up to max messages (1 to 10). It waits up to wait for the
	// first message to arrive, returning an empty slice and no error when none
	// did, and returns early when ctx is done.
	Receive(ctx context.Context, max int, wait time.Duration) ([]Message, error)

	// Delete removes the message delivered with receipt. A stale receipt (the
	// message has since been redelivered) must not remove it; whether that is
	// reported as an error depends on the implementation, as with SQS.
	Delete(ctx context.Context, receipt string) error

	// ChangeVisibility hides the message delivered with receipt for d from now;
	// 0 makes it visible again at once.
	ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error

	// Depth reports approximate counts; they may lag by a few seconds.
	Depth(ctx context.Context) (Depth, error)
}
