package stream

import (
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

//go:embed view.html
var viewHTML string

var viewPage = template.Must(template.New("view").Parse(viewHTML))

// viewData fills view.html.
type viewData struct {
	Sandbox  string
	Mode     string
	ViewOnly bool
	WS       string // path of the WebSocket
	Expires  string
	Error    string // why the page cannot show the desktop
	Reason   string // the stable reason, when a token was refused
	Nonce    string // lets the page's own script and style run under its CSP
}

// viewCSP is the page's Content-Security-Policy: scripts only from the
// server (noVNC) and the page's own inline script, styles likewise, the
// WebSocket to the server, and framing only by the server's own pages
// (the dashboard).
func viewCSP(nonce string) string {
	return "default-src 'none'; script-src 'self' 'nonce-" + nonce + "'; style-src 'self' 'nonce-" + nonce + "'; " +
		"img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; " +
		"frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
}

// ViewHandler serves the browser side of the live view:
//
//	GET /view/{id}/{token}       the page (noVNC with our settings)
//	GET /view/{id}/{token}/rfb   the RFB WebSocket, bridged to the sandbox
//	GET /view/novnc/...          noVNC's files from Config.NoVNCDir
func (s *Service) ViewHandler() http.Handler {
	var static http.Handler
	if s.novnc != nil {
		static = http.StripPrefix("/view/novnc", http.FileServerFS(s.novnc))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.writeError(w, r, desktop.Errorf(desktop.CodeInvalid, "%s %s: the live view answers GET only", r.Method, r.URL.Path))
			return
		}
		rest, _ := strings.CutPrefix(r.URL.Path, "/view/")
		if strings.HasPrefix(rest, "novnc/") {
			if static == nil {
				s.noNoVNC(w)
				return
			}
			w.Header().Set("Cache-Control", "public, max-age=3600")
			static.ServeHTTP(w, r)
			return
		}
		parts := strings.Split(rest, "/")
		switch {
		case len(parts) == 2:
			s.servePage(w, r, parts[0], parts[1])
		case len(parts) == 3 && parts[2] == "rfb":
			c, err := s.authorize(parts[0], parts[1], r.URL.Query().Get("mode"))
			if err == nil {
				err = s.serveRFB(w, r, c)
			}
			if err != nil {
				s.writeError(w, r, err)
			}
		default:
			s.writeError(w, r, desktop.Errorf(desktop.CodeNotFound,
				"no live view at %s: stream URLs look like /view/<sandbox id>/<token>; ask POST /v1/sandboxes/<id>/stream for one", r.URL.Path))
		}
	})
}

// authorize checks token for sandbox id and, when mode is not empty, for
// that mode.
func (s *Service) authorize(id, token, mode string) (Claims, error) {
	c, err := s.signer.parse(token, time.Now())
	if err != nil {
		return Claims{}, err
	}
	if c.Sandbox != id {
		return Claims{}, tokenErr(ReasonWrongSandbox, "this stream URL is for another sandbox")
	}
	if err := s.rev.check(c); err != nil {
		return Claims{}, err
	}
	if mode != "" && mode != c.Mode() {
		return Claims{}, tokenErr(ReasonWrongMode, "this stream URL is for %s mode, not %s; ask for a URL in that mode", c.Mode(), mode)
	}
	return c, nil
}

func (s *Service) servePage(w http.ResponseWriter, r *http.Request, id, token string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the token is in the path
	if s.novnc == nil {
		s.noNoVNC(w)
		return
	}
	var b [16]byte
	rand.Read(b[:])
	nonce := base64.RawURLEncoding.EncodeToString(b[:]) // no characters HTML escapes
	h.Set("Content-Security-Policy", viewCSP(nonce))
	c, err := s.authorize(id, token, "")
	if err != nil {
		d := viewData{Sandbox: id, Error: err.Error(), Nonce: nonce}
		var te *TokenError
		if errors.As(err, &te) {
			d.Error, d.Reason = te.Msg, te.Reason
		}
		w.WriteHeader(desktop.HTTPStatus(err))
		viewPage.Execute(w, d)
		return
	}
	viewPage.Execute(w, viewData{
		Sandbox: c.Sandbox, Mode: c.Mode(), ViewOnly: c.ViewOnly,
		WS:      "/view/" + c.Sandbox + "/" + token + "/rfb?mode=" + c.Mode(),
		Expires: c.ExpiresAt.UTC().Format(time.RFC3339),
		Nonce:   nonce,
	})
}

func (s *Service) noNoVNC(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte("The live view needs noVNC, which is not installed at " + s.cfg.NoVNCDir +
		": run `apt-get install novnc` on the server (or start it with --novnc-dir DIR).\n"))
}
