package client

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Screenshot captures the whole screen as PNG.
func (s *Sandbox) Screenshot(ctx context.Context) ([]byte, error) {
	img, err := s.ScreenshotWith(ctx, desktop.ScreenshotOptions{})
	if err != nil {
		return nil, err
	}
	return img.Data, nil
}

// ScreenshotWith captures the screen shaped by o: format, JPEG quality, a
// region, a scaled size, the pointer drawn in. The options are checked
// before the request.
func (s *Sandbox) ScreenshotWith(ctx context.Context, o desktop.ScreenshotOptions) (*desktop.Image, error) {
	if err := o.Validate(desktop.Size{}); err != nil {
		return nil, err
	}
	q := screenshotQuery(o)
	const path = "/v1/screenshot"
	resp, err := s.t.send(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, s.t.statusError(http.MethodGet, path, resp)
	}
	data, err := readBody(resp, 0)
	if err != nil {
		return nil, s.t.transportError(ctx, http.MethodGet, s.t.base+path, err)
	}
	img := &desktop.Image{Format: o.Format, Data: data}
	if img.Format == "" {
		img.Format = "png"
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil {
		switch mt {
		case "image/png":
			img.Format = "png"
		case "image/jpeg":
			img.Format = "jpeg"
		}
	}
	img.Width, _ = strconv.Atoi(resp.Header.Get("X-Image-Width"))
	img.Height, _ = strconv.Atoi(resp.Header.Get("X-Image-Height"))
	img.Cached, _ = strconv.ParseBool(resp.Header.Get("X-Cached"))
	return img, nil
}

// screenshotQuery is the query string of GET /v1/screenshot for o.
func screenshotQuery(o desktop.ScreenshotOptions) url.Values {
	q := url.Values{}
	if o.Format != "" {
		q.Set("format", o.Format)
	}
	if o.Quality != 0 {
		q.Set("quality", strconv.Itoa(o.Quality))
	}
	if r := o.Region; r != nil {
		q.Set("region", fmt.Sprintf("%d,%d,%d,%d", r.X, r.Y, r.Width, r.Height))
	}
	if o.Width != 0 {
		q.Set("width", strconv.Itoa(o.Width))
	}
	if o.Height != 0 {
		q.Set("height", strconv.Itoa(o.Height))
	}
	if o.Cursor {
		q.Set("cursor", "true")
	}
	return q
}

// GetCursorPosition returns where the pointer is.
func (s *Sandbox) GetCursorPosition(ctx context.Context) (desktop.Point, error) {
	var p desktop.Point
	err := s.t.call(ctx, http.MethodGet, "/v1/cursor", nil, nil, &p)
	return p, err
}

// GetScreenSize returns the size of the screen in pixels.
func (s *Sandbox) GetScreenSize(ctx context.Context) (desktop.Size, error) {
	var sz desktop.Size
	err := s.t.call(ctx, http.MethodGet, "/v1/screen", nil, nil, &sz)
	return sz, err
}

// readyAnswer is the body of GET /v1/ready: a Readiness, or an error.
type readyAnswer struct {
	Ready  *bool                `json:"ready"`
	Reason string               `json:"reason"`
	Screen *desktop.Size        `json:"screen"`
	Parts  []desktop.PartStatus `json:"parts"`
	Error  *wireError           `json:"error"`
}

// ready asks GET /v1/ready, waiting up to wait (0: not at all) on the agent.
// A desktop that is not ready is not an error here.
func (s *Sandbox) ready(ctx context.Context, wait string) (desktop.Readiness, error) {
	var q url.Values
	if wait != "" {
		q = url.Values{"wait": {wait}}
	}
	const path = "/v1/ready"
	resp, err := s.t.send(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return desktop.Readiness{}, err
	}
	defer closeBody(resp.Body)
	body, err := readBody(resp, maxErrorBody)
	if err != nil {
		return desktop.Readiness{}, s.t.transportError(ctx, http.MethodGet, s.t.base+path, err)
	}
	var a readyAnswer
	if json.Unmarshal(body, &a) != nil {
		return desktop.Readiness{}, s.t.foreignError(http.MethodGet, path, resp, body)
	}
	if a.Error != nil && a.Error.Code != "" {
		return desktop.Readiness{}, a.Error.toError()
	}
	if a.Ready == nil || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable) {
		return desktop.Readiness{}, s.t.foreignError(http.MethodGet, path, resp, body)
	}
	return desktop.Readiness{Ready: *a.Ready, Reason: a.Reason, Screen: a.Screen, Parts: a.Parts}, nil
}
