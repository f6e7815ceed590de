package clienttest

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// maxWait is the longest /v1/ready wait the agent accepts.
const maxWait = 5 * time.Minute

func (a *Agent) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	m.HandleFunc("GET /v1/ready", a.handleReady)
	m.HandleFunc("POST /v1/actions", a.needReady(a.handleBatch))
	m.HandleFunc("POST /v1/action", a.needReady(a.handleAction))
	m.HandleFunc("GET /v1/screenshot", a.needReady(a.handleScreenshot))
	m.HandleFunc("GET /v1/cursor", a.needReady(a.handleCursor))
	m.HandleFunc("GET /v1/screen", a.needReady(a.handleScreen))
	m.HandleFunc("GET /v1/windows", a.needReady(a.handleWindows))
	m.HandleFunc("GET /v1/windows/active", a.needReady(a.handleActiveWindow))
	m.HandleFunc("GET /v1/windows/{id}", a.needReady(a.handleWindow))
	m.HandleFunc("POST /v1/windows/{id}/focus", a.needReady(a.handleFocus))
	m.HandleFunc("GET /v1/clipboard", a.needReady(a.handleGetClipboard))
	m.HandleFunc("PUT /v1/clipboard", a.needReady(a.handleSetClipboard))
	m.HandleFunc("POST /v1/launch", a.needReady(a.handleLaunch))
	m.HandleFunc("POST /v1/open", a.needReady(a.handleOpen))
	m.HandleFunc("POST /v1/stream", a.needReady(a.handleStartStream))
	m.HandleFunc("DELETE /v1/stream", a.needReady(a.handleStopStream))
	a.sys.routes(m)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, desktop.Errorf(desktop.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return m
}

// needReady answers 503 not_ready until the desktop is ready.
func (a *Agent) needReady(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		ready, reason := a.ready, a.reason
		a.mu.Unlock()
		if !ready {
			writeError(w, desktop.Errorf(desktop.CodeNotReady, "the desktop is not ready yet: %s", reason))
			return
		}
		h(w, r)
	}
}

func (a *Agent) readiness() desktop.Readiness {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := desktop.Readiness{
		Ready:  a.ready,
		Reason: a.reason,
		Parts: []desktop.PartStatus{
			{Name: "xvfb", Running: true, PID: 101},
			{Name: "session", Running: a.ready, PID: 102},
		},
	}
	if a.ready {
		s := a.screen
		r.Screen = &s
	}
	return r
}

func (a *Agent) handleReady(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r, "wait"); err != nil {
		writeError(w, err)
		return
	}
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > maxWait {
			e := desktop.Errorf(desktop.CodeInvalid, "wait must be a Go duration from 0 to %s, got %q", maxWait, s)
			e.Field = "wait"
			writeError(w, e)
			return
		}
		a.mu.Lock()
		ch := a.readyCh
		a.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ch:
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	rd := a.readiness()
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
}

func (a *Agent) handleAction(w http.ResponseWriter, r *http.Request) {
	var act desktop.Action
	if err := decodeBody(r, &act); err != nil {
		writeError(w, err)
		return
	}
	a.runOne(w, r, act)
}

// runOne validates and runs one action and answers with its result.
func (a *Agent) runOne(w http.ResponseWriter, r *http.Request, act desktop.Action) {
	if err := act.Validate(a.limits()); err != nil {
		writeError(w, err)
		return
	}
	res, err := a.apply(r.Context(), 0, act)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *Agent) handleBatch(w http.ResponseWriter, r *http.Request) {
	var b desktop.Batch
	if err := decodeBody(r, &b); err != nil {
		writeJSON(w, desktop.HTTPStatus(err), desktop.BatchResult{Results: []desktop.ActionResult{}, Error: asError(err)})
		return
	}
	res := desktop.BatchResult{Results: []desktop.ActionResult{}}
	if err := b.Validate(a.limits()); err != nil {
		res.Error = asError(err)
		writeJSON(w, desktop.HTTPStatus(err), res)
		return
	}
	for i, act := range b.Actions {
		ar, err := a.apply(r.Context(), i, act)
		if err != nil {
			res.Error = asError(err)
			res.Error.Index = i
			writeJSON(w, desktop.HTTPStatus(err), res)
			return
		}
		res.Results = append(res.Results, ar)
		res.Completed++
		res.DurationMS += ar.DurationMS
	}
	if b.Settle != nil {
		settled := true
		res.Settled = &settled
	}
	if b.Screenshot != nil {
		img, err := a.shoot(*b.Screenshot)
		if err != nil {
			res.Error = asError(err)
			writeJSON(w, desktop.HTTPStatus(err), res)
			return
		}
		res.Screenshot = &img
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *Agent) limits() desktop.Limits {
	a.mu.Lock()
	defer a.mu.Unlock()
	return desktop.Limits{Screen: a.screen}
}

// apply runs one valid action on the imaginary desktop.
func (a *Agent) apply(ctx context.Context, i int, act desktop.Action) (desktop.ActionResult, error) {
	res := desktop.ActionResult{Index: i, Type: act.Type}
	if act.Settle != nil {
		settled := true
		res.Settled = &settled
	}
	if act.Type == desktop.Wait {
		t := time.NewTimer(time.Duration(act.DurationMS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return res, desktop.Errorf(desktop.CodeTimeout, "wait was cut short: %v", ctx.Err())
		}
		res.DurationMS = float64(act.DurationMS)
		return res, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.drawn = true
	switch act.Type {
	case desktop.Move, desktop.Click, desktop.MouseDown, desktop.MouseUp, desktop.Scroll:
		if p, ok := act.Pos(); ok {
			a.cursor = p
		}
		c := a.cursor
		res.Cursor = &c
	case desktop.Drag:
		a.cursor = act.Path[len(act.Path)-1]
		c := a.cursor
		res.Cursor = &c
	case desktop.FocusWindow:
		if err := a.focusLocked(act.Window); err != nil {
			return res, err
		}
	case desktop.SetClipboard:
		a.clipboard = act.Text
	case desktop.Type:
		if act.Paste {
			a.clipboard = act.Text
		}
	case desktop.Launch, desktop.Open:
		a.lastPID++
		res.PID = a.lastPID
	}
	return res, nil
}

func (a *Agent) handleCursor(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.Cursor())
}

func (a *Agent) handleScreen(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.limits().Screen)
}

func (a *Agent) handleWindows(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r, "class", "title"); err != nil {
		writeError(w, err)
		return
	}
	class, title := r.URL.Query().Get("class"), r.URL.Query().Get("title")
	out := []desktop.Window{}
	for _, win := range a.Windows() {
		if class != "" && !strings.EqualFold(win.Class, class) && !strings.EqualFold(win.Instance, class) {
			continue
		}
		if title != "" && !strings.Contains(win.Title, title) {
			continue
		}
		out = append(out, win)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Agent) handleActiveWindow(w http.ResponseWriter, r *http.Request) {
	for _, win := range a.Windows() {
		if win.Focused {
			writeJSON(w, http.StatusOK, win)
			return
		}
	}
	writeError(w, desktop.Errorf(desktop.CodeNotFound, "no window has the focus"))
}

// windowID reads the {id} of a window route.
func windowID(r *http.Request) (uint32, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil || id == 0 {
		e := desktop.Errorf(desktop.CodeInvalid, "window id must be a positive integer, got %q", s)
		e.Field = "window"
		return 0, e
	}
	return uint32(id), nil
}

func (a *Agent) handleWindow(w http.ResponseWriter, r *http.Request) {
	id, err := windowID(r)
	if err != nil {
		writeError(w, err)
		return
	}
	for _, win := range a.Windows() {
		if win.ID == id {
			writeJSON(w, http.StatusOK, win)
			return
		}
	}
	writeError(w, desktop.Errorf(desktop.CodeNotFound, "no window %d", id))
}

func (a *Agent) handleFocus(w http.ResponseWriter, r *http.Request) {
	id, err := windowID(r)
	if err != nil {
		writeError(w, err)
		return
	}
	a.mu.Lock()
	err = a.focusLocked(id)
	a.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// focusLocked gives window id the focus; a.mu is held.
func (a *Agent) focusLocked(id uint32) error {
	found := false
	for _, win := range a.windows {
		found = found || win.ID == id
	}
	if !found {
		e := desktop.Errorf(desktop.CodeNotFound, "no window %d; list them with GET /v1/windows", id)
		e.Field = "window"
		return e
	}
	for i := range a.windows {
		a.windows[i].Focused = a.windows[i].ID == id
	}
	return nil
}

func (a *Agent) handleGetClipboard(w http.ResponseWriter, r *http.Request) {
	text := a.Clipboard()
	writeJSON(w, http.StatusOK, apitype.Clipboard{Text: &text})
}

func (a *Agent) handleSetClipboard(w http.ResponseWriter, r *http.Request) {
	var body apitype.Clipboard
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	if body.Text == nil {
		e := desktop.Errorf(desktop.CodeInvalid, "the body needs text")
		e.Field = "text"
		writeError(w, e)
		return
	}
	act := desktop.Action{Type: desktop.SetClipboard, Text: *body.Text}
	if err := act.Validate(a.limits()); err != nil {
		writeError(w, err)
		return
	}
	if _, err := a.apply(r.Context(), 0, act); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Agent) handleLaunch(w http.ResponseWriter, r *http.Request) {
	var body apitype.LaunchRequest
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	a.runOne(w, r, desktop.Action{Type: desktop.Launch, App: body.App, Command: body.Command, URI: body.URI})
}

func (a *Agent) handleOpen(w http.ResponseWriter, r *http.Request) {
	var body apitype.OpenRequest
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	a.runOne(w, r, desktop.Action{Type: desktop.Open, Target: body.Target})
}

func (a *Agent) handleStartStream(w http.ResponseWriter, r *http.Request) {
	var body apitype.VNCRequest
	if r.ContentLength != 0 {
		if err := decodeBody(r, &body); err != nil {
			writeError(w, err)
			return
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if body.Window != 0 {
		found := false
		for _, win := range a.windows {
			found = found || win.ID == body.Window
		}
		if !found {
			e := desktop.Errorf(desktop.CodeNotFound, "no window %d", body.Window)
			e.Field = "window"
			writeError(w, e)
			return
		}
	}
	a.stream = "127.0.0.1:5900"
	writeJSON(w, http.StatusOK, apitype.VNCStream{Address: a.stream})
}

func (a *Agent) handleStopStream(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.stream = ""
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
