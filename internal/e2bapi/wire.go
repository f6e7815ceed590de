package e2bapi

import (
	"cmp"
	"net/netip"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// NewSandbox is the body of POST /v2/sandboxes (E2B's NewSandboxV2).
type NewSandbox struct {
	TemplateID string            `json:"templateID"`
	Timeout    *int64            `json:"timeout,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	EnvVars    map[string]string `json:"envVars,omitempty"`
	// AllowInternetAccess is snake_case on input, as E2B spells it.
	AllowInternetAccess *bool          `json:"allow_internet_access,omitempty"`
	Network             *NetworkConfig `json:"network,omitempty"`
	AutoPause           *bool          `json:"autoPause,omitempty"`
	AutoPauseMemory     *bool          `json:"autoPauseMemory,omitempty"`
	AutoResume          *AutoResume    `json:"autoResume,omitempty"`
	VolumeMounts        []VolumeMount  `json:"volumeMounts,omitempty"`
	MCP                 map[string]any `json:"mcp,omitempty"`
	IAM                 map[string]any `json:"iam,omitempty"`
	Secure              *bool          `json:"secure,omitempty"`
}

// NetworkConfig is a sandbox's network as E2B spells it. This server
// filters egress by IP address and CIDR prefix. AllowPublicTraffic false
// makes the proxy ask for the access token on every port; true or absent
// leaves the ports other than envd's open to all (see
// Config.DenyPublicTraffic).
type NetworkConfig struct {
	AllowOut           []string       `json:"allowOut,omitempty"`
	DenyOut            []string       `json:"denyOut,omitempty"`
	AllowPublicTraffic *bool          `json:"allowPublicTraffic,omitempty"`
	MaskRequestHost    *string        `json:"maskRequestHost,omitempty"`
	Rules              map[string]any `json:"rules,omitempty"`
	EgressProxy        map[string]any `json:"egressProxy,omitempty"`
	HTTPSPorts         []int          `json:"httpsPorts,omitempty"`
}

// AutoResume is the autoResume of a create request.
type AutoResume struct {
	Enabled bool `json:"enabled"`
}

// VolumeMount is one of a create request's volumeMounts.
type VolumeMount struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// NetworkUpdate is the body of PUT /sandboxes/{id}/network.
type NetworkUpdate struct {
	AllowOut            *[]string `json:"allowOut,omitempty"`
	DenyOut             *[]string `json:"denyOut,omitempty"`
	AllowInternetAccess *bool     `json:"allow_internet_access,omitempty"`
}

// TimeoutRequest is the body of POST /sandboxes/{id}/timeout.
type TimeoutRequest struct {
	Timeout *int64 `json:"timeout"`
}

// ConnectRequest is the body of POST /v2/sandboxes/{id}/connect.
type ConnectRequest struct {
	Timeout *int64 `json:"timeout,omitempty"`
	// Memory false asks for a reboot instead of a restore; a paused
	// sandbox here always keeps its memory, so it is accepted and ignored.
	Memory *bool `json:"memory,omitempty"`
}

// ResumeRequest is the body of POST /sandboxes/{id}/resume, which older
// SDKs call instead of connect.
type ResumeRequest struct {
	Timeout   *int64 `json:"timeout,omitempty"`
	AutoPause *bool  `json:"autoPause,omitempty"`
}

// Sandbox is the answer of create and connect.
type Sandbox struct {
	SandboxID          string  `json:"sandboxID"`
	TemplateID         string  `json:"templateID"`
	Alias              string  `json:"alias,omitempty"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken,omitempty"`
	TrafficAccessToken *string `json:"trafficAccessToken"`
	Domain             *string `json:"domain"`
}

// ListedSandbox is an item of GET /v2/sandboxes.
type ListedSandbox struct {
	SandboxID   string            `json:"sandboxID"`
	TemplateID  string            `json:"templateID"`
	Alias       string            `json:"alias,omitempty"`
	ClientID    string            `json:"clientID"`
	StartedAt   time.Time         `json:"startedAt"`
	EndAt       time.Time         `json:"endAt"`
	CPUCount    int               `json:"cpuCount"`
	MemoryMB    int               `json:"memoryMB"`
	DiskSizeMB  int               `json:"diskSizeMB"`
	Metadata    map[string]string `json:"metadata"`
	State       string            `json:"state"`
	EnvdVersion string            `json:"envdVersion"`
}

// SandboxDetail is the answer of GET /sandboxes/{id}.
type SandboxDetail struct {
	ListedSandbox
	EnvdAccessToken     string        `json:"envdAccessToken,omitempty"`
	Domain              *string       `json:"domain"`
	AllowInternetAccess bool          `json:"allowInternetAccess"`
	Network             NetworkOut    `json:"network"`
	Lifecycle           Lifecycle     `json:"lifecycle"`
	VolumeMounts        []VolumeMount `json:"volumeMounts"`
}

// NetworkOut is a sandbox's network in SandboxDetail (E2B's
// SandboxNetworkConfig).
type NetworkOut struct {
	AllowOut []string `json:"allowOut"`
	DenyOut  []string `json:"denyOut"`
	// AllowPublicTraffic is false when every port asks for the token.
	AllowPublicTraffic bool `json:"allowPublicTraffic"`
}

// Lifecycle says what happens at a sandbox's timeout: here it is always
// killed.
type Lifecycle struct {
	OnTimeout  string `json:"onTimeout"`
	AutoResume bool   `json:"autoResume"`
}

// Metric is an item of GET /sandboxes/{id}/metrics.
type Metric struct {
	Timestamp     time.Time `json:"timestamp"`
	TimestampUnix int64     `json:"timestampUnix"`
	CPUCount      int       `json:"cpuCount"`
	CPUUsedPct    float64   `json:"cpuUsedPct"`
	MemUsed       int64     `json:"memUsed"`
	MemTotal      int64     `json:"memTotal"`
	MemCache      int64     `json:"memCache"`
	DiskUsed      int64     `json:"diskUsed"`
	DiskTotal     int64     `json:"diskTotal"`
}

// toCreateRequest turns an E2B create body into a sandbox request whose
// agent leaves the display to the SDK. It refuses what this server cannot
// do rather than silently doing something else.
func (h *Handler) toCreateRequest(b NewSandbox) (sandbox.CreateRequest, error) {
	req := sandbox.DefaultCreateRequest()
	req.DisplayMode = sandbox.DisplayExternal
	req.PublicPorts = !h.cfg.DenyPublicTraffic
	if b.TemplateID == "" {
		return req, badRequest("templateID is required")
	}
	req.Template = b.TemplateID
	if alias, ok := h.cfg.TemplateAliases[b.TemplateID]; ok {
		req.Template = alias
	}
	if b.Timeout != nil {
		d, err := seconds("timeout", *b.Timeout)
		if err != nil {
			return req, err
		}
		req.Timeout = d
	}
	req.Metadata = b.Metadata
	req.Env = b.EnvVars
	if b.AllowInternetAccess != nil {
		req.Network.Internet = *b.AllowInternetAccess
	}
	if n := b.Network; n != nil {
		switch {
		case len(n.Rules) > 0:
			return req, badRequest("network.rules are not supported by this server")
		case len(n.EgressProxy) > 0:
			return req, badRequest("network.egressProxy is not supported by this server")
		case len(n.HTTPSPorts) > 0:
			return req, badRequest("network.httpsPorts is not supported by this server")
		}
		if n.AllowPublicTraffic != nil && !*n.AllowPublicTraffic {
			req.PublicPorts = false
		}
		var err error
		if req.Network.AllowOut, err = prefixes("network.allowOut", n.AllowOut); err != nil {
			return req, err
		}
		if req.Network.DenyOut, err = prefixes("network.denyOut", n.DenyOut); err != nil {
			return req, err
		}
	}
	switch {
	case b.AutoPause != nil && *b.AutoPause:
		return req, badRequest("lifecycle onTimeout \"pause\" (autoPause) is not supported: sandboxes are killed at their timeout; pause them yourself with pause()")
	case b.AutoResume != nil && b.AutoResume.Enabled:
		return req, badRequest("lifecycle autoResume is not supported: resume a paused sandbox with Sandbox.connect()")
	case len(b.VolumeMounts) > 0:
		return req, badRequest("volumeMounts are not supported by this server")
	case len(b.MCP) > 0:
		return req, badRequest("mcp is not supported by this server")
	case len(b.IAM) > 0:
		return req, badRequest("iam is not supported by this server")
	}
	return req, nil
}

// prefixes parses E2B's egress entries: IP addresses and CIDR prefixes.
// E2B also takes domain names; this server's firewall does not.
func prefixes(field string, in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range in {
		s = strings.TrimSpace(s)
		if pf, err := netip.ParsePrefix(s); err == nil {
			out = append(out, pf.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		return nil, badRequest("%s[%d] = %.64q is not an IP address or CIDR prefix (domain names are not supported)", field, i, s)
	}
	return out, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// state is a sandbox's state as E2B names it: one that is still starting
// counts as running.
func state(s sandbox.State) string {
	if s == sandbox.StatePaused {
		return "paused"
	}
	return "running"
}

// domain is the sandbox domain of every answer; null lets the SDK use its
// own E2B_DOMAIN.
func (h *Handler) domain() *string {
	if h.cfg.Domain == "" {
		return nil
	}
	d := h.cfg.Domain
	return &d
}

func (h *Handler) sandbox(rec sandbox.Record) Sandbox {
	return Sandbox{
		SandboxID:          rec.ID,
		TemplateID:         rec.Template,
		Alias:              rec.Template,
		ClientID:           ClientID,
		EnvdVersion:        h.cfg.EnvdVersion,
		EnvdAccessToken:    rec.Token,
		TrafficAccessToken: trafficToken(rec),
		Domain:             h.domain(),
	}
}

// trafficToken is what a client sends in the e2b-traffic-access-token
// header to reach the sandbox's ports: its access token, or null when
// its ports are public.
func trafficToken(rec sandbox.Record) *string {
	if rec.Params.PublicPorts {
		return nil
	}
	t := rec.Token
	return &t
}

func (h *Handler) listed(rec sandbox.Record) ListedSandbox {
	lim := rec.Params.Limits
	cpus := lim.CPUs
	if cpus == 0 {
		cpus = h.cfg.Defaults.CPUs
	}
	md := rec.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return ListedSandbox{
		SandboxID:   rec.ID,
		TemplateID:  rec.Template,
		Alias:       rec.Template,
		ClientID:    ClientID,
		StartedAt:   rec.Created.UTC(),
		EndAt:       rec.EndAt.UTC(),
		CPUCount:    max(1, int(cpus+0.999)),
		MemoryMB:    cmp.Or(lim.MemoryMB, h.cfg.Defaults.MemoryMB),
		DiskSizeMB:  cmp.Or(lim.DiskMB, h.cfg.Defaults.DiskMB),
		Metadata:    md,
		State:       state(rec.State),
		EnvdVersion: h.cfg.EnvdVersion,
	}
}

func (h *Handler) detail(rec sandbox.Record) SandboxDetail {
	return SandboxDetail{
		ListedSandbox:       h.listed(rec),
		EnvdAccessToken:     rec.Token,
		Domain:              h.domain(),
		AllowInternetAccess: rec.Params.Network.Internet,
		Network: NetworkOut{
			AllowOut:           prefixStrings(rec.Params.Network.AllowOut),
			DenyOut:            prefixStrings(rec.Params.Network.DenyOut),
			AllowPublicTraffic: rec.Params.PublicPorts,
		},
		Lifecycle:    Lifecycle{OnTimeout: "kill"},
		VolumeMounts: []VolumeMount{},
	}
}

func metric(st sandbox.Stats, now time.Time) Metric {
	return Metric{
		Timestamp:     now.UTC(),
		TimestampUnix: now.Unix(),
		CPUCount:      st.CPUCount,
		CPUUsedPct:    st.CPUUsedPct,
		MemUsed:       st.MemUsed,
		MemTotal:      st.MemTotal,
		MemCache:      st.MemCache,
		DiskUsed:      st.DiskUsed,
		DiskTotal:     st.DiskTotal,
	}
}

// killed says a sandbox is gone the way E2B says it: not found.
func killed(rec sandbox.Record) error {
	return notFoundf("sandbox %s was killed at %s", rec.ID, rec.Ended.UTC().Format(time.RFC3339))
}

func notFoundf(format string, args ...any) error {
	return desktop.Errorf(desktop.CodeNotFound, format, args...)
}
