package cuatest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/client/clienttest"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Fake is a fake agent (clienttest) with a real client in front of it.
type Fake struct {
	Agent   *clienttest.Agent
	Sandbox *client.Sandbox
}

// StartFake starts a fake agent with a screen of the given size.
func StartFake(t *testing.T, screen desktop.Size) *Fake {
	t.Helper()
	a := clienttest.Start(t, clienttest.Options{Screen: screen})
	sbx, err := client.ConnectAgent(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sbx.Close() })
	return &Fake{Agent: a, Sandbox: sbx}
}

// Batches returns the batches the fake received, in order, and forgets
// them.
func (f *Fake) Batches(t *testing.T) []json.RawMessage {
	t.Helper()
	out := []json.RawMessage{}
	for _, r := range f.Agent.Requests() {
		if r.Method == http.MethodPost && r.Path == "/v1/actions" {
			var v any
			if err := json.Unmarshal(r.Body, &v); err != nil {
				t.Fatalf("batch body is not JSON: %v", err)
			}
			out = append(out, r.Body)
		}
	}
	f.Agent.ClearRequests()
	return out
}

var _ interface {
	DoBatch(context.Context, desktop.Batch) (*desktop.BatchResult, error)
} = (*client.Sandbox)(nil)
