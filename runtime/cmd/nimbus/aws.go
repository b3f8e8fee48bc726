package main

import (
	"context"
	"errors"
)

func runWeb(ctx context.Context, args []string) error    { return errAWSPending }
func runWorker(ctx context.Context, args []string) error { return errAWSPending }
func runScaler(ctx context.Context, args []string) error { return errAWSPending }

var errAWSPending = errors.New("not wired yet")
