package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// WindowFilter narrows a window list. Empty fields match every window.
type WindowFilter struct {
	// Class keeps windows whose WM_CLASS class or instance equals it, case
	// ignored ("firefox-esr", "Xfce4-terminal").
	Class string
	// Title keeps windows whose title contains it.
	Title string
}

// Windows lists the top-level application windows.
func (s *Sandbox) Windows(ctx context.Context) ([]desktop.Window, error) {
	return s.FindWindows(ctx, WindowFilter{})
}

// FindWindows lists the top-level application windows that match f.
func (s *Sandbox) FindWindows(ctx context.Context, f WindowFilter) ([]desktop.Window, error) {
	q := url.Values{}
	if f.Class != "" {
		q.Set("class", f.Class)
	}
	if f.Title != "" {
		q.Set("title", f.Title)
	}
	ws := []desktop.Window{}
	if err := s.t.call(ctx, http.MethodGet, "/v1/windows", q, nil, &ws); err != nil {
		return nil, err
	}
	return ws, nil
}

// GetApplicationWindows lists the windows of one application, by WM_CLASS
// class or instance.
func (s *Sandbox) GetApplicationWindows(ctx context.Context, class string) ([]desktop.Window, error) {
	return s.FindWindows(ctx, WindowFilter{Class: class})
}

// ActiveWindow returns the focused window; an error of class ErrNotFound when
// no window has the focus.
func (s *Sandbox) ActiveWindow(ctx context.Context) (desktop.Window, error) {
	var w desktop.Window
	err := s.t.call(ctx, http.MethodGet, "/v1/windows/active", nil, nil, &w)
	return w, err
}

// GetCurrentWindowID returns the id of the focused window.
func (s *Sandbox) GetCurrentWindowID(ctx context.Context) (uint32, error) {
	w, err := s.ActiveWindow(ctx)
	return w.ID, err
}

// GetWindow returns one window; an error of class ErrNotFound when there is no
// window with that id.
func (s *Sandbox) GetWindow(ctx context.Context, id uint32) (desktop.Window, error) {
	var w desktop.Window
	err := s.t.call(ctx, http.MethodGet, windowPath(id), nil, nil, &w)
	return w, err
}

// GetWindowTitle returns the title of a window.
func (s *Sandbox) GetWindowTitle(ctx context.Context, id uint32) (string, error) {
	w, err := s.GetWindow(ctx, id)
	return w.Title, err
}

// FocusWindow raises a window and gives it the keyboard focus.
func (s *Sandbox) FocusWindow(ctx context.Context, id uint32) error {
	return s.t.call(ctx, http.MethodPost, windowPath(id)+"/focus", nil, nil, nil)
}

func windowPath(id uint32) string {
	return "/v1/windows/" + strconv.FormatUint(uint64(id), 10)
}

// Launch starts an application by the name of its .desktop file
// ("firefox-esr", "xfce4-terminal"), optionally handing it one file or URL,
// and returns the process id.
func (s *Sandbox) Launch(ctx context.Context, app string, uri ...string) (int, error) {
	if len(uri) > 1 {
		e := desktop.Errorf(desktop.CodeInvalid, "launch takes at most one uri, got %d", len(uri))
		e.Field = "uri"
		return 0, e
	}
	req := apitype.LaunchRequest{App: app}
	if len(uri) == 1 {
		req.URI = uri[0]
	}
	return s.started(ctx, "/v1/launch", req)
}

// LaunchCommand starts a program from its argv, without a shell, and returns
// the process id.
func (s *Sandbox) LaunchCommand(ctx context.Context, argv ...string) (int, error) {
	return s.started(ctx, "/v1/launch", apitype.LaunchRequest{Command: argv})
}

// Open opens a file or URL with its default application (as xdg-open does)
// and returns the process id.
func (s *Sandbox) Open(ctx context.Context, target string) (int, error) {
	return s.started(ctx, "/v1/open", apitype.OpenRequest{Target: target})
}

func (s *Sandbox) started(ctx context.Context, path string, in any) (int, error) {
	var res desktop.ActionResult
	if err := s.t.call(ctx, http.MethodPost, path, nil, in, &res); err != nil {
		return 0, err
	}
	return res.PID, nil
}

// Clipboard returns the text on the clipboard.
func (s *Sandbox) Clipboard(ctx context.Context) (string, error) {
	var c apitype.Clipboard
	if err := s.t.call(ctx, http.MethodGet, "/v1/clipboard", nil, nil, &c); err != nil {
		return "", err
	}
	if c.Text == nil {
		return "", nil
	}
	return *c.Text, nil
}

// SetClipboard puts text on the clipboard.
func (s *Sandbox) SetClipboard(ctx context.Context, text string) error {
	return s.t.call(ctx, http.MethodPut, "/v1/clipboard", nil, apitype.Clipboard{Text: &text}, nil)
}

// StreamOptions shapes a live view: Window, when not 0, streams only this
// window.
type StreamOptions = apitype.VNCRequest

// Stream is a running live view: Address is where the VNC server listens,
// as seen from the agent ("127.0.0.1:5900").
type Stream = apitype.VNCStream

// StartStream starts the VNC server of the live view (POST /v1/stream).
func (s *Sandbox) StartStream(ctx context.Context, o StreamOptions) (*Stream, error) {
	var st Stream
	if err := s.t.call(ctx, http.MethodPost, "/v1/stream", nil, o, &st); err != nil {
		return nil, err
	}
	if st.Address == "" {
		return nil, desktop.Errorf(desktop.CodeInternal, "client: POST %s/v1/stream: the answer has no address", s.t.base)
	}
	return &st, nil
}

// StopStream stops the VNC server of the live view.
func (s *Sandbox) StopStream(ctx context.Context) error {
	return s.t.call(ctx, http.MethodDelete, "/v1/stream", nil, nil, nil)
}
