package dirstore_test

import (
	"context"
	"testing"

	"github.com/nimbus-ml/nimbus/runtime/store"
	"github.com/nimbus-ml/nimbus/runtime/store/dirstore"
	"github.com/nimbus-ml/nimbus/runtime/store/storetest"
)

type harness struct{}

func (harness) MakeBucket(_ context.Context, t *testing.T) store.Bucket {
	t.Helper()
	b, err := dirstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	storetest.RunConformance(t, func(*testing.T) storetest.Harness { return harness{} })
}
