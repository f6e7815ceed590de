package mcpserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sessionIdle is how long an HTTP session may stay silent before it is
// closed.
const sessionIdle = time.Hour

// Handler serves the MCP streamable HTTP transport. With a non-empty
// token, every request needs "Authorization: Bearer <token>"; others get
// 401.
func (s *Server) Handler(token string) http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp },
		&mcp.StreamableHTTPOptions{Logger: s.log, SessionTimeout: sessionIdle})
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cubicle-mcp"`)
			http.Error(w, "unauthorized: send Authorization: Bearer <token> (the token given to cubicle mcp --http-token)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
