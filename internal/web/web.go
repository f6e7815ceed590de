// Package web is the dashboard of the server: a page at / where an owner
// logs in with an API key, sees their sandboxes with live thumbnails,
// opens live views (view only or in control), extends, kills and creates
// sandboxes. It is plain HTML, CSS and JavaScript embedded in the binary,
// and talks only to the public API (/v1), the proxy (/sandboxes/{id}/agent
// for thumbnails) and the live view (/view/).
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Patterns are the ServeMux patterns Handler serves.
func Patterns() []string { return []string{"GET /{$}", "GET /ui/"} }

// Handler serves the dashboard: GET / and its files under GET /ui/.
func Handler() http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	assets := http.StripPrefix("/ui/", http.FileServerFS(files))
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		secure(w.Header())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(index)
	})
	mux.HandleFunc("GET /ui/", func(w http.ResponseWriter, r *http.Request) {
		secure(w.Header())
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	})
	return mux
}

// secure sets the headers that keep the dashboard's key on its own page:
// no framing by other sites, no scripts from elsewhere, no referrer.
func secure(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
