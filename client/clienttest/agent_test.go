package clienttest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
)

// TestStrict checks that the fake refuses what the agent refuses, so that a
// client bug shows up as an error instead of passing.
func TestStrict(t *testing.T) {
	a := Start(t, Options{Token: "t"})
	tests := []struct {
		name, method, path, body, token string
		wantStatus                      int
		wantCode                        string
	}{
		{"health needs no token", "GET", "/health", "", "", http.StatusNoContent, ""},
		{"token missing", "GET", "/v1/cursor", "", "", http.StatusUnauthorized, desktop.CodeUnauthorized},
		{"unknown field", "POST", "/v1/action", `{"type":"click","bogus":1}`, "t", http.StatusBadRequest, desktop.CodeBadRequest},
		{"two values", "POST", "/v1/action", `{"type":"click"} {}`, "t", http.StatusBadRequest, desktop.CodeBadRequest},
		{"empty body", "POST", "/v1/action", ``, "t", http.StatusBadRequest, desktop.CodeBadRequest},
		{"field of another type", "POST", "/v1/action", `{"type":"move","x":1,"y":1,"text":"a"}`, "t", http.StatusBadRequest, desktop.CodeInvalid},
		{"unknown query parameter", "GET", "/v1/screenshot?fmt=png", "", "t", http.StatusBadRequest, desktop.CodeBadRequest},
		{"unknown route", "GET", "/v1/nothing", "", "t", http.StatusNotFound, desktop.CodeNotFound},
		{"bad window id", "GET", "/v1/windows/abc", "", "t", http.StatusBadRequest, desktop.CodeInvalid},
		{"wait too long", "GET", "/v1/ready?wait=6m", "", "t", http.StatusBadRequest, desktop.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, a.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode == "" {
				return
			}
			var env struct {
				Error desktop.Error `json:"error"`
			}
			if err := json.Unmarshal(body, &env); err != nil || env.Error.Code != tt.wantCode || env.Error.Message == "" {
				t.Errorf("body %s (%v), want an error with code %s and a message", body, err, tt.wantCode)
			}
		})
	}
	if got := len(a.Requests()); got != len(tests) {
		t.Errorf("recorded %d requests, want %d", got, len(tests))
	}
}
