package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/display"
	"github.com/cubicle-dev/cubicle/internal/xvfbtest"
)

// startAttached runs an agent attached to a fresh Xvfb and returns its URL.
func startAttached(t *testing.T, token string) string {
	t.Helper()
	xs := xvfbtest.Start(t, xvfbtest.Options{Width: 800, Height: 600})
	a, err := New(Config{Display: display.Config{Display: xs.Num}, Token: token, Limits: desktop.Limits{MaxText: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := a.WaitReady(wctx); err != nil {
		t.Fatalf("agent not ready: %v", err)
	}
	return "http://" + ln.Addr().String()
}

type apiError struct {
	Error desktop.Error `json:"error"`
}

// call sends a raw request and decodes the error body, if any.
func call(t *testing.T, method, url, token, body string) (int, apiError, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e apiError
	json.Unmarshal(b, &e)
	return resp.StatusCode, e, b
}

func TestAPIRejectsBadInput(t *testing.T) {
	const tok = "t0k"
	url := startAttached(t, tok)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
		msg                      string
	}{
		{"not json", "POST", "/v1/actions", `{"actions": [`, 400, desktop.CodeBadRequest, "not valid JSON"},
		{"empty body", "POST", "/v1/actions", ``, 400, desktop.CodeBadRequest, "empty"},
		{"unknown field", "POST", "/v1/actions", `{"actions":[],"bogus":1}`, 400, desktop.CodeBadRequest, "bogus"},
		{"trailing data", "POST", "/v1/action", `{"type":"wait"} {}`, 400, desktop.CodeBadRequest, "after the JSON"},
		{"wrong type", "POST", "/v1/action", `{"type":"move","x":"10","y":1}`, 400, desktop.CodeBadRequest, `"x"`},
		{"unknown action", "POST", "/v1/action", `{"type":"fly"}`, 400, desktop.CodeUnknownAction, "fly"},
		{"out of bounds", "POST", "/v1/action", `{"type":"click","x":800,"y":0}`, 400, desktop.CodeOutOfBounds, "800x600"},
		{"unknown key", "POST", "/v1/action", `{"type":"key","keys":["ctrl","nope"]}`, 400, desktop.CodeUnknownKey, "nope"},
		{"unknown button", "POST", "/v1/action", `{"type":"click","button":"thumb"}`, 400, desktop.CodeUnknownButton, "thumb"},
		{"text too long", "POST", "/v1/action", `{"type":"type","text":"` + strings.Repeat("a", 1001) + `"}`, 400, desktop.CodeTextTooLong, "1000"},
		{"body too large", "POST", "/v1/actions", `{"actions":[{"type":"type","text":"` + strings.Repeat("a", 9<<20) + `"}]}`, 413, desktop.CodeTooLarge, "bytes"},
		{"bad region", "GET", "/v1/screenshot?region=1,2,3", "", 400, desktop.CodeInvalid, "x,y,width,height"},
		{"region outside", "GET", "/v1/screenshot?region=700,500,200,200", "", 400, desktop.CodeOutOfBounds, "outside"},
		{"bad format", "GET", "/v1/screenshot?format=gif", "", 400, desktop.CodeInvalid, "gif"},
		{"bad quality", "GET", "/v1/screenshot?format=jpeg&quality=abc", "", 400, desktop.CodeInvalid, "quality"},
		{"bad window id", "POST", "/v1/windows/xyz/focus", "", 400, desktop.CodeInvalid, "xyz"},
		{"unknown window", "GET", "/v1/windows/12345", "", 404, desktop.CodeNotFound, "12345"},
		{"focus unknown window", "POST", "/v1/windows/4242/focus", "", 404, desktop.CodeNotFound, ""},
		{"no route", "GET", "/v1/nothing", "", 404, desktop.CodeNotFound, "openapi"},
		{"bad wait", "GET", "/v1/ready?wait=forever", "", 400, desktop.CodeInvalid, "wait"},
		{"clipboard without text", "PUT", "/v1/clipboard", `{}`, 400, desktop.CodeInvalid, "text"},
		{"launch nothing", "POST", "/v1/launch", `{}`, 400, desktop.CodeInvalid, "either app"},
		{"launch missing app", "POST", "/v1/launch", `{"app":"no-such-app-xyz"}`, 404, desktop.CodeNotFound, "no-such-app-xyz"},
		{"launch missing program", "POST", "/v1/launch", `{"command":["no-such-program-xyz"]}`, 404, desktop.CodeNotFound, "PATH"},
		{"stream unmanaged", "POST", "/v1/stream", ``, 409, desktop.CodeConflict, "manage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e, raw := call(t, tt.method, url+tt.path, tok, tt.body)
			if status != tt.status || e.Error.Code != tt.code || !strings.Contains(e.Error.Message, tt.msg) {
				t.Errorf("%s %s = %d %s, want %d with code %q and a message containing %q",
					tt.method, tt.path, status, truncate(raw), tt.status, tt.code, tt.msg)
			}
		})
	}

	t.Run("token", func(t *testing.T) {
		for _, tk := range []string{"", "wrong"} {
			status, e, _ := call(t, "GET", url+"/v1/screen", tk, "")
			if status != 401 || e.Error.Code != desktop.CodeUnauthorized {
				t.Errorf("token %q: %d %+v, want 401 unauthorized", tk, status, e)
			}
		}
		req, _ := http.NewRequest("GET", url+"/v1/screen", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("bearer token: %v %v", resp, err)
		}
		resp.Body.Close()
		if status, _, _ := call(t, "GET", url+"/health", "", ""); status != 204 {
			t.Errorf("/health without token = %d, want 204", status)
		}
	})
}

func TestAPIBatch(t *testing.T) {
	url := startAttached(t, "")
	sbx, err := client.ConnectAgent(url)
	if err != nil {
		t.Fatal(err)
	}
	defer sbx.Close()
	ctx := context.Background()

	// A failure at run time (not validation) stops the batch after the
	// actions before it ran.
	res, err := sbx.Do(ctx,
		desktop.Action{Type: desktop.Move}.At(10, 20),
		desktop.Action{Type: desktop.Click}.At(30, 40),
		desktop.Action{Type: desktop.FocusWindow, Window: 999999},
		desktop.Action{Type: desktop.Move}.At(50, 60))
	var de *desktop.Error
	if !errors.As(err, &de) || de.Index != 2 || !errors.Is(err, desktop.ErrNotFound) {
		t.Fatalf("Do = %v, want not found at index 2", err)
	}
	if res == nil || res.Completed != 2 || len(res.Results) != 2 {
		t.Fatalf("result = %+v, want 2 completed", res)
	}
	if c := res.Results[1].Cursor; c == nil || *c != (desktop.Point{X: 30, Y: 40}) {
		t.Errorf("click result cursor = %v, want (30, 40)", c)
	}
	p, err := sbx.GetCursorPosition(ctx)
	if err != nil || p != (desktop.Point{X: 30, Y: 40}) {
		t.Errorf("cursor after the failed batch = %v, %v; want (30, 40): the fourth action must not run", p, err)
	}

	// Settle and screenshot after a batch.
	res, err = sbx.DoBatch(ctx, desktop.Batch{
		Actions:    []desktop.Action{{Type: desktop.Wait, DurationMS: 10}},
		Settle:     &desktop.Settle{QuietMS: 20, TimeoutMS: 2000},
		Screenshot: &desktop.ScreenshotOptions{Width: 400},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Screenshot == nil || res.Screenshot.Width != 400 || res.Screenshot.Height != 300 || !bytes.HasPrefix(res.Screenshot.Data, []byte("\x89PNG")) {
		t.Errorf("batch screenshot = %+v", res.Screenshot)
	}
	if res.Settled == nil || !*res.Settled {
		t.Errorf("a still screen did not settle: %v", res.Settled)
	}
}

func TestReadyBeforeDisplay(t *testing.T) {
	// An agent whose display never comes up answers not_ready, never hangs.
	a, err := New(Config{Display: display.Config{Display: 4999}})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	defer func() { cancel(); <-done }()
	url := "http://" + ln.Addr().String()

	status, e, _ := call(t, "POST", url+"/v1/action", "", `{"type":"move","x":1,"y":1}`)
	if status != 503 || e.Error.Code != desktop.CodeNotReady ||
		!strings.Contains(e.Error.Message, "X server") && !strings.Contains(e.Error.Message, "display") {
		t.Errorf("action before ready = %d %+v, want 503 not_ready naming the display or the X server", status, e)
	}
	status, _, raw := call(t, "GET", url+"/v1/ready?wait=100ms", "", "")
	var rd desktop.Readiness
	json.Unmarshal(raw, &rd)
	if status != 503 || rd.Ready || rd.Reason == "" {
		t.Errorf("ready = %d %s, want 503 with a reason", status, raw)
	}
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
