package agent

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/display"
	"github.com/cubicle-dev/cubicle/internal/httpjson"
	"github.com/cubicle-dev/cubicle/internal/x11"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI document of the agent API.
func OpenAPI() []byte { return openAPI }

// maxBody bounds request bodies: the longest text (100,000 characters of up
// to 4 bytes) with room for JSON escapes and a full batch.
const maxBody = 8 << 20

// Handler returns the agent's HTTP API.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPI)
	})
	handle := func(pattern string, h handlerFunc) { mux.Handle(pattern, a.authed(h)) }
	handle("GET /v1/ready", a.handleReady)
	handle("POST /v1/actions", a.handleBatch)
	handle("POST /v1/action", a.handleAction)
	handle("GET /v1/screenshot", a.handleScreenshot)
	handle("GET /v1/cursor", a.handleCursor)
	handle("GET /v1/screen", a.handleScreen)
	handle("GET /v1/windows", a.handleWindows)
	handle("GET /v1/windows/active", a.handleActiveWindow)
	handle("GET /v1/windows/{id}", a.handleWindow)
	handle("POST /v1/windows/{id}/focus", a.handleFocus)
	handle("GET /v1/clipboard", a.handleClipboard)
	handle("PUT /v1/clipboard", a.handleSetClipboard)
	handle("POST /v1/launch", a.handleLaunch)
	handle("POST /v1/open", a.handleOpen)
	handle("POST /v1/stream", a.handleStartStream)
	handle("DELETE /v1/stream", a.handleStopStream)
	handle("GET /v1/stream/rfb", a.handleRFB)
	a.commandRoutes(handle)
	// E2B's envd: /process.Process/*, /filesystem.Filesystem/*, /files,
	// /init, /envs, /metrics; it checks the token itself.
	a.envd.Register(mux)
	mux.Handle("/", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		return desktop.Errorf(desktop.CodeNotFound, "no route %s %s; see GET /openapi.yaml", r.Method, r.URL.Path)
	}))
	return mux
}

// handlerFunc is a handler that returns its error; one place writes it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (a *Agent) authed(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Token != "" && !tokenOK(r, a.cfg.Token) {
			a.writeError(w, r, desktop.Errorf(desktop.CodeUnauthorized,
				"missing or wrong access token: send it in the X-Access-Token header"))
			return
		}
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

func tokenOK(r *http.Request, token string) bool {
	got := r.Header.Get("X-Access-Token")
	if got == "" {
		got, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func (a *Agent) writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpjson.WriteError(w, r, a.log, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	return httpjson.WriteJSON(w, status, v)
}

// decode reads a JSON body strictly (see httpjson.Decode).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return httpjson.Decode(w, r, v, maxBody, false)
}

func (a *Agent) handleReady(w http.ResponseWriter, r *http.Request) error {
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 5*time.Minute {
			return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "wait", Message: fmt.Sprintf("wait=%q must be a duration from 0 to 5m, such as 30s", s)}
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		a.WaitReady(ctx)
		cancel()
	}
	rd := a.Readiness(r.Context())
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	return writeJSON(w, status, rd)
}

func (a *Agent) handleBatch(w http.ResponseWriter, r *http.Request) error {
	var b desktop.Batch
	if err := decode(w, r, &b); err != nil {
		return err
	}
	res, err := a.Do(r, &b)
	if err != nil {
		var de *desktop.Error
		if !errors.As(err, &de) || de.Code == desktop.CodeInternal {
			a.writeError(w, r, err)
			return nil
		}
		res.Error = de
		return writeJSON(w, desktop.HTTPStatus(err), res)
	}
	return writeJSON(w, http.StatusOK, res)
}

func (a *Agent) handleAction(w http.ResponseWriter, r *http.Request) error {
	var act desktop.Action
	if err := decode(w, r, &act); err != nil {
		return err
	}
	return a.single(w, r, act)
}

// Do runs a batch on the desktop, atomically with respect to other batches.
func (a *Agent) Do(r *http.Request, b *desktop.Batch) (*desktop.BatchResult, error) {
	x, err := a.conn()
	if err != nil {
		return &desktop.BatchResult{Results: []desktop.ActionResult{}}, err
	}
	a.actMu.Lock()
	defer a.actMu.Unlock()
	return runBatch(r.Context(), x, a.launch, b, a.cfg.Limits)
}

func (a *Agent) handleScreenshot(w http.ResponseWriter, r *http.Request) error {
	opts, err := screenshotOptions(r)
	if err != nil {
		return err
	}
	x, err := a.conn()
	if err != nil {
		return err
	}
	img, err := x.Screenshot(r.Context(), opts)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "image/"+img.Format)
	h.Set("Content-Length", strconv.Itoa(len(img.Data)))
	h.Set("X-Image-Width", strconv.Itoa(img.Width))
	h.Set("X-Image-Height", strconv.Itoa(img.Height))
	h.Set("X-Cached", strconv.FormatBool(img.Cached))
	h.Set("Cache-Control", "no-store")
	_, err = w.Write(img.Data)
	return nil
}

// screenshotOptions reads the query of GET /v1/screenshot.
func screenshotOptions(r *http.Request) (desktop.ScreenshotOptions, error) {
	q := r.URL.Query()
	var o desktop.ScreenshotOptions
	o.Format = q.Get("format")
	ints := []struct {
		name string
		dst  *int
	}{{"quality", &o.Quality}, {"width", &o.Width}, {"height", &o.Height}}
	for _, f := range ints {
		if s := q.Get(f.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return o, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: f.name, Message: fmt.Sprintf("%s=%q is not a whole number", f.name, s)}
			}
			*f.dst = n
		}
	}
	if s := q.Get("cursor"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return o, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "cursor", Message: fmt.Sprintf("cursor=%q must be true or false", s)}
		}
		o.Cursor = b
	}
	if s := q.Get("region"); s != "" {
		rect, err := parseRect(s)
		if err != nil {
			return o, err
		}
		o.Region = &rect
	}
	return o, nil
}

// parseRect parses "x,y,width,height".
func parseRect(s string) (desktop.Rect, error) {
	parts := strings.Split(s, ",")
	bad := &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "region",
		Message: fmt.Sprintf("region=%q must be four whole numbers x,y,width,height such as 0,0,640,480", s)}
	if len(parts) != 4 {
		return desktop.Rect{}, bad
	}
	var n [4]int
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return desktop.Rect{}, bad
		}
		n[i] = v
	}
	return desktop.Rect{X: n[0], Y: n[1], Width: n[2], Height: n[3]}, nil
}

// answer writes what get reads from the desktop, once it is ready.
func answer[T any](a *Agent, w http.ResponseWriter, r *http.Request, get func(*x11.Conn, context.Context) (T, error)) error {
	x, err := a.conn()
	if err != nil {
		return err
	}
	v, err := get(x, r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (a *Agent) handleCursor(w http.ResponseWriter, r *http.Request) error {
	return answer(a, w, r, (*x11.Conn).CursorPosition)
}

func (a *Agent) handleScreen(w http.ResponseWriter, r *http.Request) error {
	return answer(a, w, r, (*x11.Conn).ScreenSize)
}

func (a *Agent) handleWindows(w http.ResponseWriter, r *http.Request) error {
	x, err := a.conn()
	if err != nil {
		return err
	}
	wins, err := x.Windows(r.Context())
	if err != nil {
		return err
	}
	class, title := r.URL.Query().Get("class"), r.URL.Query().Get("title")
	out := make([]desktop.Window, 0, len(wins))
	for _, win := range wins {
		if class != "" && !strings.EqualFold(win.Class, class) && !strings.EqualFold(win.Instance, class) {
			continue
		}
		if title != "" && !strings.Contains(win.Title, title) {
			continue
		}
		out = append(out, win)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *Agent) handleActiveWindow(w http.ResponseWriter, r *http.Request) error {
	x, err := a.conn()
	if err != nil {
		return err
	}
	id, err := x.ActiveWindow(r.Context())
	if err != nil {
		return err
	}
	if id == 0 {
		return desktop.Errorf(desktop.CodeNotFound, "no window has the focus")
	}
	return a.writeWindow(w, r, id)
}

func (a *Agent) handleWindow(w http.ResponseWriter, r *http.Request) error {
	id, err := windowID(r)
	if err != nil {
		return err
	}
	return a.writeWindow(w, r, id)
}

func (a *Agent) writeWindow(w http.ResponseWriter, r *http.Request, id uint32) error {
	x, err := a.conn()
	if err != nil {
		return err
	}
	wins, err := x.Windows(r.Context())
	if err != nil {
		return err
	}
	for _, win := range wins {
		if win.ID == id {
			return writeJSON(w, http.StatusOK, win)
		}
	}
	return &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "id", Message: fmt.Sprintf("no application window %d; list them with GET /v1/windows", id)}
}

func windowID(r *http.Request) (uint32, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseUint(s, 0, 32)
	if err != nil || id == 0 {
		return 0, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "id", Message: fmt.Sprintf("window id %q is not a positive number", s)}
	}
	return uint32(id), nil
}

func (a *Agent) handleFocus(w http.ResponseWriter, r *http.Request) error {
	id, err := windowID(r)
	if err != nil {
		return err
	}
	if _, err := a.Do(r, &desktop.Batch{Actions: []desktop.Action{{Type: desktop.FocusWindow, Window: id}}}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *Agent) handleClipboard(w http.ResponseWriter, r *http.Request) error {
	return answer(a, w, r, func(x *x11.Conn, ctx context.Context) (apitype.Clipboard, error) {
		text, err := x.Clipboard(ctx)
		return apitype.Clipboard{Text: &text}, err
	})
}

func (a *Agent) handleSetClipboard(w http.ResponseWriter, r *http.Request) error {
	var body apitype.Clipboard
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if body.Text == nil {
		return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "text", Message: `body needs "text"`}
	}
	if _, err := a.Do(r, &desktop.Batch{Actions: []desktop.Action{{Type: desktop.SetClipboard, Text: *body.Text}}}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *Agent) handleLaunch(w http.ResponseWriter, r *http.Request) error {
	var body apitype.LaunchRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	return a.single(w, r, desktop.Action{Type: desktop.Launch, App: body.App, Command: body.Command, URI: body.URI})
}

func (a *Agent) handleOpen(w http.ResponseWriter, r *http.Request) error {
	var body apitype.OpenRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	return a.single(w, r, desktop.Action{Type: desktop.Open, Target: body.Target})
}

// single runs one action and writes its result.
func (a *Agent) single(w http.ResponseWriter, r *http.Request, act desktop.Action) error {
	res, err := a.Do(r, &desktop.Batch{Actions: []desktop.Action{act}})
	if err != nil {
		var de *desktop.Error
		if errors.As(err, &de) {
			c := *de
			c.Index = -1
			return &c
		}
		return err
	}
	return writeJSON(w, http.StatusOK, res.Results[0])
}

func (a *Agent) handleStartStream(w http.ResponseWriter, r *http.Request) error {
	var body apitype.VNCRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &body); err != nil {
			return err
		}
	}
	if a.sup == nil {
		return desktop.Errorf(desktop.CodeConflict, "this agent does not manage its display (started without --manage); run a VNC server yourself")
	}
	if _, err := a.conn(); err != nil {
		return err
	}
	addr, err := a.sup.StartVNC(r.Context(), display.VNCOptions{Window: body.Window})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apitype.VNCStream{Address: addr})
}

func (a *Agent) handleStopStream(w http.ResponseWriter, r *http.Request) error {
	if a.sup != nil {
		if err := a.sup.StopVNC(r.Context()); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
