package api

import (
	"cmp"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// defaultCreateRequest is what a field left out of a create body means;
// the body is decoded over it.
func defaultCreateRequest() apitype.CreateRequest {
	d := sandbox.DefaultCreateRequest()
	return apitype.CreateRequest{
		Template:   d.Template,
		Resolution: apitype.Resolution{Width: d.Width, Height: d.Height},
		DPI:        d.DPI,
		TimeoutS:   int(d.Timeout / time.Second),
		Network:    &apitype.Network{Internet: d.Network.Internet},
	}
}

// toSandbox checks a create body decoded over defaultCreateRequest and
// turns it into a request of the manager. "network": null is the default
// policy.
func toSandbox(c apitype.CreateRequest) (sandbox.CreateRequest, error) {
	n := c.Network
	if n == nil {
		n = defaultCreateRequest().Network
	}
	netw, err := toPolicy(*n, "network.")
	if err != nil {
		return sandbox.CreateRequest{}, err
	}
	timeout, err := seconds(c.TimeoutS)
	if err != nil {
		return sandbox.CreateRequest{}, err
	}
	return sandbox.CreateRequest{
		Template: c.Template,
		Width:    c.Resolution.Width,
		Height:   c.Resolution.Height,
		DPI:      c.DPI,
		Timeout:  timeout,
		Metadata: c.Metadata,
		Env:      c.Env,
		Limits:   sandbox.Limits{CPUs: c.Limits.CPUs, MemoryMB: c.Limits.MemoryMB, DiskMB: c.Limits.DiskMB, Pids: c.Limits.Pids},
		Network:  netw,
	}, nil
}

// seconds turns timeout_s into a duration, refusing what would overflow.
func seconds(s int) (time.Duration, error) {
	max := int(sandbox.MaxTimeout / time.Second)
	if s < 1 || s > max {
		return 0, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "timeout_s",
			Message: fmt.Sprintf("timeout_s must be from 1 to %d seconds, not %d", max, s)}
	}
	return time.Duration(s) * time.Second, nil
}

// toPolicy parses the CIDR lists; field prefixes the field names in errors.
func toPolicy(n apitype.Network, field string) (sandbox.NetworkPolicy, error) {
	p := sandbox.NetworkPolicy{Internet: n.Internet}
	for _, l := range []struct {
		name string
		in   []string
		out  *[]netip.Prefix
	}{{"allow_out", n.AllowOut, &p.AllowOut}, {"deny_out", n.DenyOut, &p.DenyOut}} {
		if len(l.in) > sandbox.MaxNetworkPrefixes {
			return p, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: field + l.name,
				Message: fmt.Sprintf("%s%s has %d entries; at most %d are allowed", field, l.name, len(l.in), sandbox.MaxNetworkPrefixes)}
		}
		for i, s := range l.in {
			pf, err := netip.ParsePrefix(s)
			if err != nil {
				name := fmt.Sprintf("%s%s[%d]", field, l.name, i)
				return p, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: name,
					Message: fmt.Sprintf("%s = %.64q is not a CIDR prefix such as 203.0.113.0/24 or 2001:db8::/32", name, s)}
			}
			*l.out = append(*l.out, pf.Masked())
		}
	}
	return p, nil
}

func fromPolicy(p sandbox.NetworkPolicy) apitype.Network {
	n := apitype.Network{Internet: p.Internet, AllowOut: []string{}, DenyOut: []string{}}
	for _, pf := range p.AllowOut {
		n.AllowOut = append(n.AllowOut, pf.String())
	}
	for _, pf := range p.DenyOut {
		n.DenyOut = append(n.DenyOut, pf.String())
	}
	return n
}

// wire turns rec into its JSON form; withToken adds the access token of a
// sandbox that is not killed.
func (h *Handler) wire(r *http.Request, rec sandbox.Record, withToken bool) apitype.Sandbox {
	s := apitype.Sandbox{
		ID:         rec.ID,
		Template:   rec.Template,
		State:      string(rec.State),
		StartedAt:  rec.Created.UTC(),
		EndAt:      rec.EndAt.UTC(),
		Metadata:   rec.Metadata,
		Resolution: apitype.Resolution{Width: rec.Params.Width, Height: rec.Params.Height},
		DPI:        rec.Params.DPI,
		Limits:     h.limits(rec.Params.Limits),
		Network:    fromPolicy(rec.Params.Network),
		AgentURL:   h.baseURL(r) + "/sandboxes/" + rec.ID + "/agent",
	}
	if s.Metadata == nil {
		s.Metadata = map[string]string{}
	}
	if withToken && rec.State != sandbox.StateKilled {
		s.AccessToken = apitype.Token(rec.Token)
	}
	return s
}

// limits is what a sandbox that asked for l got: its own values, and the
// server's defaults where it asked for none.
func (h *Handler) limits(l sandbox.Limits) apitype.Limits {
	d := h.cfg.Defaults
	return apitype.Limits{CPUs: cmp.Or(l.CPUs, d.CPUs), MemoryMB: cmp.Or(l.MemoryMB, d.MemoryMB),
		DiskMB: cmp.Or(l.DiskMB, d.DiskMB), Pids: cmp.Or(l.Pids, d.Pids)}
}

// metricsOf is the answer of GET /v1/sandboxes/{id}/metrics.
func metricsOf(st sandbox.Stats, now time.Time) apitype.Metrics {
	return apitype.Metrics{CPUCount: st.CPUCount, CPUUsedPct: st.CPUUsedPct, MemUsed: st.MemUsed, MemTotal: st.MemTotal,
		MemCache: st.MemCache, DiskUsed: st.DiskUsed, DiskTotal: st.DiskTotal, Timestamp: now.UTC()}
}

// baseURL is how the client reached the server.
func (h *Handler) baseURL(r *http.Request) string {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
