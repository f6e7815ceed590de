package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/client/clienttest"
	"github.com/cubicle-dev/cubicle/desktop"
)

// isClass reports whether err is non-nil and of class class, and of no other.
func isClass(err error, class error) bool {
	return err != nil && errors.Is(err, class) && desktop.Class(err) == class
}

// answer returns a handler that answers with a fixed status and body.
func answer(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

const proxyPage = `<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.22.1</center>
</body>
</html>`

func TestAgentErrors(t *testing.T) {
	tests := []struct {
		name     string
		opts     clienttest.Options
		override map[string]http.HandlerFunc
		call     func(ctx context.Context, sb *client.Sandbox) error
		class    error
		want     *desktop.Error // Message is checked with contains when set
	}{
		{
			name:  "unknown key",
			call:  func(ctx context.Context, sb *client.Sandbox) error { return sb.Press(ctx, "ctrl", "nosuchkey") },
			class: client.ErrInvalid,
			want:  &desktop.Error{Code: desktop.CodeUnknownKey, Field: "keys", Index: -1, Message: `unknown key "nosuchkey"`},
		},
		{
			name:  "out of bounds",
			call:  func(ctx context.Context, sb *client.Sandbox) error { return sb.LeftClick(ctx, 5000, 1) },
			class: client.ErrInvalid,
			want:  &desktop.Error{Code: desktop.CodeOutOfBounds, Field: "x", Index: -1, Message: "outside the 1024x768 screen"},
		},
		{
			name: "unknown window",
			call: func(ctx context.Context, sb *client.Sandbox) error {
				_, err := sb.GetWindowTitle(ctx, 99)
				return err
			},
			class: client.ErrNotFound,
			want:  &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Message: "no window 99"},
		},
		{
			name:  "focus unknown window",
			call:  func(ctx context.Context, sb *client.Sandbox) error { return sb.FocusWindow(ctx, 99) },
			class: client.ErrNotFound,
			want:  &desktop.Error{Code: desktop.CodeNotFound, Field: "window", Index: -1, Message: "no window 99"},
		},
		{
			name:  "not ready",
			opts:  clienttest.Options{NotReady: "the panel is not mapped yet"},
			call:  func(ctx context.Context, sb *client.Sandbox) error { return sb.LeftClick(ctx, 1, 1) },
			class: client.ErrUnavailable,
			want:  &desktop.Error{Code: desktop.CodeNotReady, Index: -1, Message: "the panel is not mapped yet"},
		},
		{
			name:     "proxy page",
			override: map[string]http.HandlerFunc{"POST /v1/action": answer(http.StatusBadGateway, "text/html", proxyPage)},
			call:     func(ctx context.Context, sb *client.Sandbox) error { return sb.LeftClick(ctx, 1, 1) },
			class:    client.ErrUnavailable,
			want: &desktop.Error{Code: desktop.CodeUnavailable, Index: -1,
				Message: `502 Bad Gateway, not an answer from the agent (is something else at this URL, or a proxy in between?): "<html> <head><title>502 Bad Gateway</title></head>`},
		},
		{
			name:     "plain text 500",
			override: map[string]http.HandlerFunc{"GET /v1/cursor": answer(http.StatusInternalServerError, "text/plain", "boom\n")},
			call: func(ctx context.Context, sb *client.Sandbox) error {
				_, err := sb.GetCursorPosition(ctx)
				return err
			},
			class: client.ErrInternal,
			want:  &desktop.Error{Code: desktop.CodeInternal, Index: -1, Message: `500 Internal Server Error, not an answer from the agent (is something else at this URL, or a proxy in between?): "boom"`},
		},
		{
			name:     "empty 404",
			override: map[string]http.HandlerFunc{"GET /v1/screen": answer(http.StatusNotFound, "text/plain", "")},
			call: func(ctx context.Context, sb *client.Sandbox) error {
				_, err := sb.GetScreenSize(ctx)
				return err
			},
			class: client.ErrNotFound,
			want:  &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Message: "404 Not Found, not an answer from the agent (is something else at this URL, or a proxy in between?): (empty body)"},
		},
		{
			name: "error without index",
			override: map[string]http.HandlerFunc{"GET /v1/clipboard": answer(http.StatusConflict, "application/json",
				`{"error":{"code":"conflict","message":"another client owns the selection"}}`)},
			call: func(ctx context.Context, sb *client.Sandbox) error {
				_, err := sb.Clipboard(ctx)
				return err
			},
			class: client.ErrConflict,
			want:  &desktop.Error{Code: desktop.CodeConflict, Index: -1, Message: "another client owns the selection"},
		},
		{
			name:     "garbage 200",
			override: map[string]http.HandlerFunc{"GET /v1/cursor": answer(http.StatusOK, "text/html", "<html>hello</html>")},
			call: func(ctx context.Context, sb *client.Sandbox) error {
				_, err := sb.GetCursorPosition(ctx)
				return err
			},
			class: client.ErrInternal,
			want:  &desktop.Error{Code: desktop.CodeInternal, Index: -1, Message: "200 OK answer is not the expected JSON"},
		},
		{
			name: "agent timeout",
			override: map[string]http.HandlerFunc{"POST /v1/action": answer(http.StatusGatewayTimeout, "application/json",
				`{"error":{"code":"timeout","message":"the X server did not answer in 5s","index":-1}}`)},
			call:  func(ctx context.Context, sb *client.Sandbox) error { return sb.Write(ctx, "x") },
			class: client.ErrTimeout,
			want:  &desktop.Error{Code: desktop.CodeTimeout, Index: -1, Message: "the X server did not answer in 5s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, sb := start(t, tt.opts)
			for p, h := range tt.override {
				a.Override(p, h)
			}
			err := tt.call(t.Context(), sb)
			if !isClass(err, tt.class) {
				t.Fatalf("error = %v, want one of class %v", err, tt.class)
			}
			var de *desktop.Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *desktop.Error", err, err)
			}
			got := *de
			if !strings.Contains(got.Message, tt.want.Message) {
				t.Errorf("message = %q, want it to contain %q", got.Message, tt.want.Message)
			}
			got.Message = tt.want.Message
			if diff := cmp.Diff(*tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnauthorized(t *testing.T) {
	a := clienttest.Start(t, clienttest.Options{Token: testToken})
	for _, opts := range [][]client.Option{nil, {client.WithToken("wrong")}} {
		sb, err := client.ConnectAgent(a.URL, opts...)
		if err != nil {
			t.Fatal(err)
		}
		err = sb.LeftClick(t.Context(), 1, 1)
		if !isClass(err, client.ErrUnauthorized) {
			t.Errorf("click with options %d: error = %v, want class ErrUnauthorized", len(opts), err)
		}
		if code := desktop.CodeOf(err); code != desktop.CodeUnauthorized {
			t.Errorf("code = %q, want %q", code, desktop.CodeUnauthorized)
		}
		// Health needs no token.
		if err := sb.Health(t.Context()); err != nil {
			t.Errorf("Health without the right token: %v", err)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	u := freeURL(t)
	sb, err := client.ConnectAgent(u)
	if err != nil {
		t.Fatal(err)
	}
	err = sb.LeftClick(t.Context(), 1, 1)
	if !isClass(err, client.ErrUnavailable) {
		t.Fatalf("error = %v, want class ErrUnavailable", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v does not wrap ECONNREFUSED", err)
	}
	var de *desktop.Error
	if errors.As(err, &de) {
		t.Errorf("a transport error is a *desktop.Error %+v; want a plain error", de)
	}
	for _, want := range []string{"POST " + u + "/v1/action", "agent unreachable", "is " + u + " its URL", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestDeadline(t *testing.T) {
	a, sb := start(t, clienttest.Options{})
	a.Override("POST /v1/action", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err := sb.LeftClick(ctx, 1, 1)
	if !isClass(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want class ErrTimeout wrapping context.DeadlineExceeded", err)
	}

	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	err = sb.LeftClick(ctx, 1, 1)
	if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrTimeout) {
		t.Errorf("error = %v, want context.Canceled and not ErrTimeout", err)
	}
}

func TestClientSideChecks(t *testing.T) {
	a, sb := start(t, clienttest.Options{})
	ctx := t.Context()
	tests := []struct {
		name string
		err  error
	}{
		{"Scroll sideways", sb.Scroll(ctx, "sideways", 1)},
		{"Scroll negative", sb.Scroll(ctx, "down", -1)},
		{"Launch two uris", func() error { _, err := sb.Launch(ctx, "firefox-esr", "a", "b"); return err }()},
		{"ScreenshotWith gif", func() error {
			_, err := sb.ScreenshotWith(ctx, desktop.ScreenshotOptions{Format: "gif"})
			return err
		}()},
		{"Wait negative", sb.Wait(ctx, -time.Second)},
	}
	for _, tt := range tests {
		if !isClass(tt.err, client.ErrInvalid) {
			t.Errorf("%s: error = %v, want class ErrInvalid", tt.name, tt.err)
		}
	}
	if reqs := a.Requests(); len(reqs) != 0 {
		t.Errorf("invalid calls sent %d requests: %v", len(reqs), reqs)
	}
	if err := sb.Write(ctx, ""); err != nil || len(a.Requests()) != 0 {
		t.Errorf("Write(\"\") = %v after %d requests, want nil and none", err, len(a.Requests()))
	}
}

func boolPtr(b bool) *bool { return &b }

func TestDoPartialFailure(t *testing.T) {
	_, sb := start(t, clienttest.Options{})
	res, err := sb.Do(t.Context(),
		desktop.Action{Type: desktop.Move}.At(10, 20),
		desktop.Action{Type: desktop.Click, Count: 2},
		desktop.Action{Type: desktop.FocusWindow, Window: 999},
		desktop.Action{Type: desktop.Key, Keys: []string{"enter"}},
	)
	if !isClass(err, client.ErrNotFound) {
		t.Fatalf("error = %v, want class ErrNotFound", err)
	}
	var de *desktop.Error
	if !errors.As(err, &de) || de.Index != 2 {
		t.Errorf("error = %#v, want a *desktop.Error with Index 2", err)
	}
	if got, want := err.Error(), "action 2: no window 999"; !strings.HasPrefix(got, want) {
		t.Errorf("error = %q, want it to start with %q", got, want)
	}
	if res == nil {
		t.Fatal("no partial result")
	}
	if res.Error != de {
		t.Errorf("result.Error = %v, want the returned error", res.Error)
	}
	want := &desktop.BatchResult{
		Completed: 2,
		Results: []desktop.ActionResult{
			{Index: 0, Type: desktop.Move, Cursor: &desktop.Point{X: 10, Y: 20}},
			{Index: 1, Type: desktop.Click, Cursor: &desktop.Point{X: 10, Y: 20}},
		},
		Error: &desktop.Error{Code: desktop.CodeNotFound, Index: 2, Field: "window",
			Message: "no window 999; list them with GET /v1/windows"},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("partial result (-want +got):\n%s", diff)
	}
}

func TestDoInvalidAction(t *testing.T) {
	_, sb := start(t, clienttest.Options{})
	res, err := sb.Do(t.Context(),
		desktop.Action{Type: desktop.Move}.At(10, 20),
		desktop.Action{Type: desktop.Key, Keys: []string{"ctrl+l"}},
	)
	var de *desktop.Error
	if !errors.As(err, &de) || de.Code != desktop.CodeUnknownKey || de.Index != 1 || !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("error = %#v, want unknown_key at index 1", err)
	}
	if !strings.Contains(de.Message, `["ctrl" "l"]`) {
		t.Errorf("message %q does not suggest the split keys", de.Message)
	}
	if res == nil || res.Completed != 0 || len(res.Results) != 0 {
		t.Errorf("result = %+v, want one with nothing completed", res)
	}
}

func TestDoForeignAnswers(t *testing.T) {
	a, sb := start(t, clienttest.Options{})
	a.Override("POST /v1/actions", answer(http.StatusBadGateway, "text/html", proxyPage))
	res, err := sb.Do(t.Context(), desktop.Action{Type: desktop.Click})
	if res != nil || !isClass(err, client.ErrUnavailable) {
		t.Errorf("Do through a broken proxy = %+v, %v; want no result and class ErrUnavailable", res, err)
	}

	a.Override("POST /v1/actions", nil)
	sb2, err := client.ConnectAgent(a.URL) // no token
	if err != nil {
		t.Fatal(err)
	}
	res, err = sb2.Do(t.Context(), desktop.Action{Type: desktop.Click})
	if !isClass(err, client.ErrUnauthorized) {
		t.Errorf("Do without a token: error = %v, want class ErrUnauthorized", err)
	}
	if res == nil || res.Completed != 0 || res.Error == nil || res.Error.Index != -1 {
		t.Errorf("Do without a token: result = %+v, want an empty one carrying the error", res)
	}
}

func TestDoBatchSettleAndScreenshot(t *testing.T) {
	_, sb := start(t, clienttest.Options{Screen: desktop.Size{Width: 640, Height: 480}})
	res, err := sb.DoBatch(t.Context(), desktop.Batch{
		Actions:    []desktop.Action{{Type: desktop.Type, Text: "hello"}},
		Settle:     &desktop.Settle{},
		Screenshot: &desktop.ScreenshotOptions{Width: 320},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed != 1 || res.Settled == nil || !*res.Settled {
		t.Errorf("result = %+v, want 1 completed and settled", res)
	}
	img := res.Screenshot
	if img == nil {
		t.Fatal("no screenshot in the result")
	}
	w, h := decodeSize(t, img.Data, "png")
	if img.Format != "png" || img.Width != 320 || img.Height != 240 || w != 320 || h != 240 {
		t.Errorf("screenshot %s %dx%d with a %dx%d picture, want png 320x240", img.Format, img.Width, img.Height, w, h)
	}
}

func TestDoEmpty(t *testing.T) {
	a, sb := start(t, clienttest.Options{})
	_, err := sb.Do(t.Context())
	if !isClass(err, client.ErrInvalid) {
		t.Errorf("empty batch: error = %v, want class ErrInvalid", err)
	}
	if got := canonJSON(t, a.Requests()[0].Body); got != `{"actions":[]}` {
		t.Errorf("empty batch sent %s, want {\"actions\":[]}", got)
	}
}

func TestErrorAliases(t *testing.T) {
	pairs := []struct{ alias, class error }{
		{client.ErrInvalid, desktop.ErrInvalid}, {client.ErrNotFound, desktop.ErrNotFound},
		{client.ErrConflict, desktop.ErrConflict}, {client.ErrUnavailable, desktop.ErrUnavailable},
		{client.ErrTimeout, desktop.ErrTimeout}, {client.ErrUnauthorized, desktop.ErrUnauthorized},
		{client.ErrTooLarge, desktop.ErrTooLarge}, {client.ErrInternal, desktop.ErrInternal},
	}
	for _, p := range pairs {
		if p.alias != p.class {
			t.Errorf("client alias %v is not desktop's %v", p.alias, p.class)
		}
	}
	var e error = &client.Error{Code: desktop.CodeNotFound, Index: -1}
	if !errors.Is(e, client.ErrNotFound) {
		t.Error("client.Error is not desktop.Error")
	}
}
