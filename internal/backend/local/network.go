package local

import (
	"context"
	"net/netip"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// Network gives every sandbox a network namespace of its own, created and
// owned by the host so that nothing inside can change its interfaces,
// routes or firewall. The sandbox joins the namespace when it starts.
type Network interface {
	// Setup creates the network namespace of sandbox id and what connects
	// it, and returns how to reach it.
	Setup(ctx context.Context, id string) (NetInfo, error)
	// Apply replaces the egress policy of sandbox id.
	Apply(ctx context.Context, id string, p sandbox.NetworkPolicy) error
	// Teardown removes everything Setup made for id; an unknown id is not
	// an error.
	Teardown(ctx context.Context, id string) error
	// Reclaim removes what is left of every sandbox whose id is not in keep.
	Reclaim(ctx context.Context, keep map[string]bool) error
}

// NetInfo is a sandbox's network as the backend needs it.
type NetInfo struct {
	// NetNSPath opens the sandbox's network namespace (an nsfs bind mount
	// or /proc/<pid>/ns/net).
	NetNSPath string
	// Addr is the sandbox's address; the zero Addr when it has none.
	Addr netip.Addr
}
