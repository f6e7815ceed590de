// Package sandbox is the lifecycle of sandboxes: creating them from a
// template, their timeouts, owners and metadata, reconnecting, killing, and
// reconciling what runs with what the store remembers after a restart. It
// defines the Backend and Store interfaces it consumes and imports no
// implementation of either.
package sandbox

import (
	"context"
	"net/netip"
	"time"
)

// Backend runs sandboxes: isolated environments whose pid 1 is the cubicle
// agent. The local backend builds them from Linux namespaces and cgroups;
// others (Kubernetes) can follow behind the same interface.
type Backend interface {
	// Create starts a sandbox as spec says and returns once its init runs
	// and its network is set up. It does not wait for the desktop: the
	// caller polls the agent's readiness at Instance.AgentURL.
	Create(ctx context.Context, spec Spec) (*Instance, error)
	// Destroy stops the sandbox and removes everything it left: processes,
	// mounts, network namespace, veth, firewall rules, cgroups, its writable
	// layer. Destroying an unknown or already destroyed id is not an error.
	Destroy(ctx context.Context, id string) error
	// Pause freezes every process of the sandbox; Resume thaws them.
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	// SetNetwork replaces the sandbox's egress policy, live.
	SetNetwork(ctx context.Context, id string, p NetworkPolicy) error
	// Stats reports the sandbox's resource use now.
	Stats(ctx context.Context, id string) (Stats, error)
	// Adopt takes over a sandbox that a previous run of the server created
	// and that still runs (inst as the store recorded it). It fails with
	// desktop.ErrNotFound when the sandbox is gone.
	Adopt(ctx context.Context, inst Instance) error
	// Reclaim removes the leftovers of every sandbox whose id is not in
	// keep: a crash of the server or of a sandbox leaves network
	// namespaces, veths, cgroups and state directories behind.
	Reclaim(ctx context.Context, keep map[string]bool) error
}

// Spec is what a sandbox is made of.
type Spec struct {
	// ID is 20 characters of [a-z0-9].
	ID string
	// RootFS is the template's root filesystem: a read-only directory
	// owned by host root, shared by every sandbox made from it.
	RootFS string
	// Agent is the host path of the cubicle binary; it is mounted read-only
	// into the sandbox and runs as pid 1: `cubicle agent` followed by
	// AgentArgs (the backend adds the subcommand).
	Agent     string
	AgentArgs []string
	// Env is the environment of the agent (and so of every process it
	// starts), as KEY=value.
	Env      []string
	Hostname string
	Limits   Limits
	Network  NetworkPolicy
}

// Limits bound a sandbox's resources. Zero fields take the backend's
// defaults.
type Limits struct {
	CPUs     float64 // CPU time, in cores
	MemoryMB int     // memory including tmpfs
	DiskMB   int     // the writable layer
	Pids     int     // processes and threads
}

// NetworkPolicy is a sandbox's egress policy. Private ranges, link-local
// and metadata addresses, the host and other sandboxes are always denied,
// whatever the lists say.
type NetworkPolicy struct {
	// Internet allows egress to public addresses; false denies everything
	// but AllowOut.
	Internet bool
	AllowOut []netip.Prefix // allowed even when Internet is false
	DenyOut  []netip.Prefix // denied even when Internet is true
}

// Instance is a running sandbox as the backend knows it. The store keeps
// it so the server can adopt the sandbox after a restart.
type Instance struct {
	ID string `json:"id"`
	// InitPID is pid 1 of the sandbox as the host sees it, and InitStart
	// its start time in clock ticks since boot (/proc/<pid>/stat field 22),
	// which tells a live init from a reused pid.
	InitPID   int    `json:"init_pid"`
	InitStart uint64 `json:"init_start"`
	// Addr is the sandbox's address on its veth; the agent listens on
	// Addr:AgentPort.
	Addr netip.Addr `json:"addr"`
	// Backend-specific state needed to adopt and destroy it (cgroup paths,
	// veth and netns names), opaque to the manager.
	State   []byte    `json:"state,omitempty"`
	Started time.Time `json:"started"`
}

// AgentPort is the port the agent (desktop API and envd) listens on inside
// every sandbox.
const AgentPort = 49983

// Stats is a sandbox's resource use.
type Stats struct {
	CPUCount   int     `json:"cpu_count"`
	CPUUsedPct float64 `json:"cpu_used_pct"`
	MemUsed    int64   `json:"mem_used"`
	MemTotal   int64   `json:"mem_total"`
	MemCache   int64   `json:"mem_cache"`
	DiskUsed   int64   `json:"disk_used"`
	DiskTotal  int64   `json:"disk_total"`
}
