package apitype

import (
	"log/slog"
	"time"
)

// Sandbox states, as Sandbox.State reports them.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StatePaused   = "paused"
	StateKilled   = "killed"
)

// Token is a secret on the wire (a sandbox's access token, a stream
// token). It prints and logs as "[redacted]"; string(tok) is the secret.
// It encodes as a plain JSON string.
type Token string

// String returns "[redacted]" so that the token is not printed by mistake.
func (t Token) String() string { return "[redacted]" }

// LogValue keeps the token out of logs.
func (t Token) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Sandbox is a sandbox as the server describes it: the answer of
// POST /v1/sandboxes, GET, connect, timeout, metadata and network of
// /v1/sandboxes/{id}, and an element of ListResponse.
type Sandbox struct {
	ID       string `json:"id"`
	Template string `json:"template"`
	// State is StateStarting, StateRunning, StatePaused or StateKilled.
	State     string    `json:"state"`
	StartedAt time.Time `json:"started_at"`
	// EndAt is when the timeout kills the sandbox.
	EndAt      time.Time         `json:"end_at"`
	Metadata   map[string]string `json:"metadata"`
	Resolution Resolution        `json:"resolution"`
	DPI        int               `json:"dpi"`
	// Limits are what the sandbox got: its own and the server's defaults.
	Limits  Limits  `json:"limits"`
	Network Network `json:"network"`
	// AccessToken opens the sandbox's agent. Only the answers to create,
	// connect and get carry it, and only while the sandbox is not killed.
	AccessToken Token `json:"access_token,omitempty"`
	// AgentURL reaches the agent through the server's proxy.
	AgentURL string `json:"agent_url"`
}

// Resolution is a screen size in pixels (Sandbox.Resolution,
// CreateRequest.Resolution).
type Resolution struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// Limits bound a sandbox's resources (CreateRequest.Limits,
// Sandbox.Limits); a zero field in a request takes the server's default.
type Limits struct {
	CPUs     float64 `json:"cpus,omitempty"`
	MemoryMB int     `json:"memory_mb,omitempty"`
	DiskMB   int     `json:"disk_mb,omitempty"`
	Pids     int     `json:"pids,omitempty"`
}

// Network is a sandbox's outbound network policy: the body of
// PUT /v1/sandboxes/{id}/network, CreateRequest.Network and
// Sandbox.Network. AllowOut and DenyOut are CIDR prefixes
// ("10.1.0.0/16") that refine Internet. A request may leave the lists
// out; an answer always has them, empty or not.
type Network struct {
	Internet bool     `json:"internet"`
	AllowOut []string `json:"allow_out,omitzero"`
	DenyOut  []string `json:"deny_out,omitzero"`
}

// CreateRequest is the body of POST /v1/sandboxes. Every field may be
// left out and takes the server's default: template "desktop", 1024x768
// at 96 DPI, 300 seconds, the server's limits, internet on.
type CreateRequest struct {
	Template   string     `json:"template,omitempty"`
	Resolution Resolution `json:"resolution,omitzero"`
	DPI        int        `json:"dpi,omitempty"`
	// TimeoutS is the sandbox's time to live in seconds.
	TimeoutS int               `json:"timeout_s,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Env is the default environment of every command in the sandbox.
	Env    map[string]string `json:"env,omitempty"`
	Limits Limits            `json:"limits,omitzero"`
	// Network is nil for the default policy (internet on); a zero Network
	// turns the internet off.
	Network *Network `json:"network,omitempty"`
}

// TimeoutRequest is the body of POST /v1/sandboxes/{id}/timeout.
type TimeoutRequest struct {
	// TimeoutS is the new time to live from now, in seconds; required.
	TimeoutS *int `json:"timeout_s"`
}

// ConnectRequest is the optional body of POST /v1/sandboxes/{id}/connect.
type ConnectRequest struct {
	// TimeoutS, when set, is the new time to live from now, in seconds.
	TimeoutS *int `json:"timeout_s,omitempty"`
}

// MetadataRequest is the body of PATCH /v1/sandboxes/{id}/metadata.
type MetadataRequest struct {
	// Metadata replaces the sandbox's; required ({} clears it).
	Metadata map[string]string `json:"metadata"`
}

// ListResponse is a page of GET /v1/sandboxes.
type ListResponse struct {
	Sandboxes []Sandbox `json:"sandboxes"`
	// Next is the cursor of the next page (?next=); "" on the last one.
	Next string `json:"next"`
}

// Metrics is the answer of GET /v1/sandboxes/{id}/metrics: the
// sandbox's resource use at one moment. Memory and disk are in bytes.
type Metrics struct {
	CPUCount   int       `json:"cpu_count"`
	CPUUsedPct float64   `json:"cpu_used_pct"`
	MemUsed    int64     `json:"mem_used"`
	MemTotal   int64     `json:"mem_total"`
	MemCache   int64     `json:"mem_cache"`
	DiskUsed   int64     `json:"disk_used"`
	DiskTotal  int64     `json:"disk_total"`
	Timestamp  time.Time `json:"timestamp"`
}
