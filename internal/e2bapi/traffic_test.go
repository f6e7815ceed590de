package e2bapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// trafficOf reads what create, connect and get say of a sandbox's public
// traffic.
type trafficOf struct {
	createToken  *string
	connectToken *string
	detailPublic bool
}

func (h *harness) traffic(s Sandbox) trafficOf {
	h.t.Helper()
	out := trafficOf{createToken: s.TrafficAccessToken}
	r := h.do("POST", "/v2/sandboxes/"+s.SandboxID+"/connect", `{}`)
	if r.status != http.StatusOK {
		h.t.Fatalf("connect: %d %s", r.status, r.body)
	}
	var c Sandbox
	if err := json.Unmarshal(r.body, &c); err != nil {
		h.t.Fatal(err)
	}
	out.connectToken = c.TrafficAccessToken
	r = h.do("GET", "/sandboxes/"+s.SandboxID, "")
	if r.status != http.StatusOK {
		h.t.Fatalf("get: %d %s", r.status, r.body)
	}
	var d struct {
		Network map[string]any `json:"network"`
	}
	if err := json.Unmarshal(r.body, &d); err != nil {
		h.t.Fatal(err)
	}
	pub, ok := d.Network["allowPublicTraffic"].(bool)
	if !ok {
		h.t.Fatalf("detail network %v has no boolean allowPublicTraffic", d.Network)
	}
	out.detailPublic = pub
	return out
}

func TestAllowPublicTraffic(t *testing.T) {
	tests := []struct {
		name       string
		deny       bool // Config.DenyPublicTraffic
		body       string
		wantPublic bool
	}{
		{"default", false, `{"templateID":"desktop"}`, true},
		{"empty network", false, `{"templateID":"desktop","network":{}}`, true},
		{"null", false, `{"templateID":"desktop","network":{"allowPublicTraffic":null}}`, true},
		{"true", false, `{"templateID":"desktop","network":{"allowPublicTraffic":true}}`, true},
		{"false", false, `{"templateID":"desktop","network":{"allowPublicTraffic":false}}`, false},
		{"denied by the server", true, `{"templateID":"desktop"}`, false},
		{"denied by the server, true asked", true, `{"templateID":"desktop","network":{"allowPublicTraffic":true}}`, false},
		{"denied by the server, false asked", true, `{"templateID":"desktop","network":{"allowPublicTraffic":false}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.DenyPublicTraffic = tt.deny })
			s := h.create(tt.body)
			rec, err := h.m.Get(t.Context(), "alice", s.SandboxID)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Params.PublicPorts != tt.wantPublic {
				t.Errorf("PublicPorts = %v, want %v", rec.Params.PublicPorts, tt.wantPublic)
			}
			got := h.traffic(s)
			if got.detailPublic != tt.wantPublic {
				t.Errorf("detail network.allowPublicTraffic = %v, want %v", got.detailPublic, tt.wantPublic)
			}
			for what, tok := range map[string]*string{"create": got.createToken, "connect": got.connectToken} {
				switch {
				case tt.wantPublic && tok != nil:
					t.Errorf("%s: trafficAccessToken = %q, want null for a public sandbox", what, *tok)
				case !tt.wantPublic && (tok == nil || *tok != rec.Token || *tok != s.EnvdAccessToken):
					t.Errorf("%s: trafficAccessToken = %v, want the sandbox's access token", what, tok)
				}
			}
		})
	}
}

// TestNativeSandboxIsNotPublic checks that a sandbox made through /v1 (the
// manager's default request) reports its token as trafficAccessToken.
func TestNativeSandboxIsNotPublic(t *testing.T) {
	h := newHarness(t)
	rec, err := h.m.Create(t.Context(), "alice", sandbox.DefaultCreateRequest())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Params.PublicPorts {
		t.Fatalf("a sandbox of the default request has public ports")
	}
	got := h.traffic(Sandbox{SandboxID: rec.ID})
	if got.connectToken == nil || *got.connectToken != rec.Token || got.detailPublic {
		t.Errorf("connect trafficAccessToken %v, detail allowPublicTraffic %v; want the token and false", got.connectToken, got.detailPublic)
	}
}
