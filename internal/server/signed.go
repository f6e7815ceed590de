package server

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/cubicle-dev/cubicle/internal/e2bapi"
	"github.com/cubicle-dev/cubicle/internal/envd"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// signedFiles routes the signed file URLs that E2B's SDK builds on a shared
// sandbox URL (E2B_SANDBOX_URL): downloadUrl and uploadUrl are then
// <url>/files?path=...&signature=..., with nothing that names the
// sandbox. The signature does: it is made with one sandbox's access token.
// serveSignedFiles reports whether r is such a request, and serves it
// when it is: it hands it to the proxy naming its sandbox by the
// E2b-Sandbox-Id header (the proxy forwards it without the token, for the
// agent to check the signature again), or answers 401 itself when no
// running sandbox's token made the signature.
func (s *Server) serveSignedFiles(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != "/files" {
		return false
	}
	op, ok := envd.FileOp(r.Method)
	if !ok {
		return false
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return false
	}
	sig, signed, err := envd.ParseFileSignature(q)
	if !signed {
		return false
	}
	if err != nil {
		writeSignedError(w, err.Error())
		return true
	}
	id, ok := s.manager.FindRoute(func(_ string, rt sandbox.Route) bool {
		return rt.Token != "" && sig.Matches(op, rt.Token)
	})
	if !ok {
		writeSignedError(w, "the signature matches no running sandbox: it is for another path or operation, "+
			"or its sandbox was killed, paused or timed out")
		return true
	}
	r = r.Clone(r.Context())
	r.Header.Set("E2b-Sandbox-Id", id)
	r.Header.Del("E2b-Sandbox-Port")
	s.intoProxy(w, r)
	return true
}

func writeSignedError(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	json.NewEncoder(w).Encode(e2bapi.Error{Code: http.StatusUnauthorized, Message: "unauthorized access: " + msg})
}
