package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/internal/api"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
	"github.com/cubicle-dev/cubicle/internal/server"
)

// TestPublicTrafficReachesProxy checks what the proxy's ResolveFunc says
// of sandboxes made through E2B's API and through /v1, with and without
// E2BDenyPublicTraffic.
func TestPublicTrafficReachesProxy(t *testing.T) {
	for _, deny := range []bool{false, true} {
		name := "default"
		if deny {
			name = "E2BDenyPublicTraffic"
		}
		t.Run(name, func(t *testing.T) {
			be := sandboxtest.NewBackend(sandboxtest.Options{ReadyAfter: 50 * time.Millisecond})
			defer be.Close()
			var resolve server.ResolveFunc
			r := startServer(t, options{dir: t.TempDir(), be: be, e2bDenyPublic: deny,
				proxy: func(rf server.ResolveFunc) (http.Handler, error) {
					resolve = rf
					return newTestProxy(rf)
				}})
			defer r.stop()
			key := r.key("alice")

			e2b := func(body string) (id string, traffic *string) {
				t.Helper()
				status, out := r.send("POST", "/v2/sandboxes", "", body, "X-API-KEY", api.E2BKey(key))
				if status != http.StatusCreated {
					t.Fatalf("POST /v2/sandboxes %s = %d %s", body, status, out)
				}
				var s struct {
					SandboxID          string  `json:"sandboxID"`
					TrafficAccessToken *string `json:"trafficAccessToken"`
				}
				if err := json.Unmarshal([]byte(out), &s); err != nil {
					t.Fatal(err)
				}
				return s.SandboxID, s.TrafficAccessToken
			}
			defID, defTraffic := e2b(`{"templateID":"desktop"}`)
			offID, offTraffic := e2b(`{"templateID":"desktop","network":{"allowPublicTraffic":false}}`)
			native := r.create(key, nil)

			for _, tc := range []struct {
				name         string
				id           string
				traffic      *string
				wantPublic   bool
				checkTraffic bool
			}{
				{"e2b default", defID, defTraffic, !deny, true},
				{"e2b allowPublicTraffic false", offID, offTraffic, false, true},
				{"v1", native.ID, nil, false, false},
			} {
				rt, ok := resolve(tc.id)
				if !ok || rt.PublicPorts != tc.wantPublic || rt.Token == "" {
					t.Errorf("%s: resolve = public %v, has token %v, %v; want public %v with a token",
						tc.name, rt.PublicPorts, rt.Token != "", ok, tc.wantPublic)
				}
				if !tc.checkTraffic {
					continue
				}
				if tc.wantPublic != (tc.traffic == nil) || (tc.traffic != nil && *tc.traffic != rt.Token) {
					t.Errorf("%s: trafficAccessToken %v, want null when public, else the sandbox's token", tc.name, tc.traffic)
				}
			}
		})
	}
}
