package server

import (
	"fmt"
	"net/http"

	"github.com/cubicle-dev/cubicle/internal/e2bapi"
)

// Mount is a handler the server serves at a ServeMux pattern (such as
// "/view/" or "GET /health"), beside its own APIs.
type Mount struct {
	Pattern string
	Handler http.Handler
}

// faces lists what the server serves on its listener besides the proxy:
// the native API under /v1, E2B's control plane, and Config.Mounts. The
// native API also answers every path nobody else claims (a JSON 404),
// unless a mount takes "/".
func (s *Server) faces() []Mount {
	out := []Mount{{"/v1/", s.api}, {"GET /health", s.e2b}}
	for _, p := range e2bapi.Prefixes {
		out = append(out, Mount{p, s.e2b})
	}
	out = append(out, s.cfg.Mounts...)
	for _, m := range s.cfg.Mounts {
		if m.Pattern == "/" {
			return out
		}
	}
	return append(out, Mount{"/", s.api})
}

// buildMux routes the requests that are not for the proxy.
func (s *Server) buildMux() (mux *http.ServeMux, err error) {
	mux = http.NewServeMux()
	defer func() {
		// ServeMux panics on a bad or conflicting pattern: a mistake in
		// Config.Mounts.
		if p := recover(); p != nil {
			mux, err = nil, fmt.Errorf("server: mounts: %v", p)
		}
	}()
	for _, m := range s.faces() {
		if m.Handler == nil {
			return nil, fmt.Errorf("server: mounts: %q has no handler", m.Pattern)
		}
		mux.Handle(m.Pattern, m.Handler)
	}
	return mux, nil
}
