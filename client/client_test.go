package client_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/client/clienttest"
	"github.com/cubicle-dev/cubicle/desktop"
)

const testToken = "s3cret-token"

// testWindows are the windows of the fake desktop.
func testWindows() []desktop.Window {
	return []desktop.Window{
		{ID: 12, Title: "Terminal - user@box: ~", Class: "Xfce4-terminal", Instance: "xfce4-terminal", PID: 321,
			Rect: desktop.Rect{X: 40, Y: 60, Width: 800, Height: 500}, Focused: true},
		{ID: 34, Title: "Mozilla Firefox", Class: "firefox-esr", Instance: "Navigator", PID: 654,
			Rect: desktop.Rect{X: 0, Y: 0, Width: 1024, Height: 740}},
	}
}

// start runs a fake agent with a token and a Sandbox connected to it.
func start(t *testing.T, o clienttest.Options) (*clienttest.Agent, *client.Sandbox) {
	t.Helper()
	if o.Token == "" {
		o.Token = testToken
	}
	if o.Windows == nil {
		o.Windows = testWindows()
	}
	a := clienttest.Start(t, o)
	sb, err := client.ConnectAgent(a.URL, client.WithToken(o.Token), client.WithUserAgent("cubicle-test/1"))
	if err != nil {
		t.Fatalf("ConnectAgent(%q): %v", a.URL, err)
	}
	t.Cleanup(func() { sb.Close() })
	return a, sb
}

// sent is a request as the tests compare it: the body as canonical JSON.
type sent struct {
	Method, Path, Query, Body string
}

func canonJSON(t *testing.T, b []byte) string {
	t.Helper()
	if len(b) == 0 {
		return ""
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func sentOf(t *testing.T, r clienttest.Request) sent {
	t.Helper()
	return sent{Method: r.Method, Path: r.Path, Query: r.Query.Encode(), Body: canonJSON(t, r.Body)}
}

func TestMethodsSendWhatTheAPISpecifies(t *testing.T) {
	type call func(ctx context.Context, sb *client.Sandbox) error
	ignore := func(_ any, err error) error { return err }
	tests := []struct {
		name string
		call call
		want sent
	}{
		{"LeftClick", func(ctx context.Context, sb *client.Sandbox) error { return sb.LeftClick(ctx, 10, 20) },
			sent{"POST", "/v1/action", "", `{"type":"click","x":10,"y":20}`}},
		{"DoubleClick", func(ctx context.Context, sb *client.Sandbox) error { return sb.DoubleClick(ctx, 0, 0) },
			sent{"POST", "/v1/action", "", `{"type":"click","x":0,"y":0,"count":2}`}},
		{"TripleClick", func(ctx context.Context, sb *client.Sandbox) error { return sb.TripleClick(ctx, 7, 8) },
			sent{"POST", "/v1/action", "", `{"type":"click","x":7,"y":8,"count":3}`}},
		{"RightClick", func(ctx context.Context, sb *client.Sandbox) error { return sb.RightClick(ctx, 1, 2) },
			sent{"POST", "/v1/action", "", `{"type":"click","x":1,"y":2,"button":"right"}`}},
		{"MiddleClick", func(ctx context.Context, sb *client.Sandbox) error { return sb.MiddleClick(ctx, 3, 4) },
			sent{"POST", "/v1/action", "", `{"type":"click","x":3,"y":4,"button":"middle"}`}},
		{"MoveMouse", func(ctx context.Context, sb *client.Sandbox) error { return sb.MoveMouse(ctx, 5, 6) },
			sent{"POST", "/v1/action", "", `{"type":"move","x":5,"y":6}`}},
		{"MousePress", func(ctx context.Context, sb *client.Sandbox) error { return sb.MousePress(ctx, desktop.Right) },
			sent{"POST", "/v1/action", "", `{"type":"mouse_down","button":"right"}`}},
		{"MouseRelease", func(ctx context.Context, sb *client.Sandbox) error { return sb.MouseRelease(ctx, "") },
			sent{"POST", "/v1/action", "", `{"type":"mouse_up"}`}},
		{"Drag", func(ctx context.Context, sb *client.Sandbox) error {
			return sb.Drag(ctx, desktop.Point{X: 1, Y: 2}, desktop.Point{X: 30, Y: 40})
		}, sent{"POST", "/v1/action", "", `{"type":"drag","path":[{"x":1,"y":2},{"x":30,"y":40}]}`}},
		{"Scroll/down", func(ctx context.Context, sb *client.Sandbox) error { return sb.Scroll(ctx, "down", 3) },
			sent{"POST", "/v1/action", "", `{"type":"scroll","dy":3}`}},
		{"Scroll/up", func(ctx context.Context, sb *client.Sandbox) error { return sb.Scroll(ctx, "up", 2) },
			sent{"POST", "/v1/action", "", `{"type":"scroll","dy":-2}`}},
		{"Scroll/left", func(ctx context.Context, sb *client.Sandbox) error { return sb.Scroll(ctx, "left", 1) },
			sent{"POST", "/v1/action", "", `{"type":"scroll","dx":-1}`}},
		{"Scroll/right", func(ctx context.Context, sb *client.Sandbox) error { return sb.Scroll(ctx, "Right", 4) },
			sent{"POST", "/v1/action", "", `{"type":"scroll","dx":4}`}},
		{"Scroll/defaults", func(ctx context.Context, sb *client.Sandbox) error { return sb.Scroll(ctx, "", 0) },
			sent{"POST", "/v1/action", "", `{"type":"scroll","dy":1}`}},
		{"Write", func(ctx context.Context, sb *client.Sandbox) error { return sb.Write(ctx, "héllo\n") },
			sent{"POST", "/v1/action", "", `{"type":"type","text":"héllo\n"}`}},
		{"Press/keys", func(ctx context.Context, sb *client.Sandbox) error { return sb.Press(ctx, "ctrl", "l") },
			sent{"POST", "/v1/action", "", `{"type":"key","keys":["ctrl","l"]}`}},
		{"Press/combo", func(ctx context.Context, sb *client.Sandbox) error { return sb.Press(ctx, "ctrl+shift+t") },
			sent{"POST", "/v1/action", "", `{"type":"key","keys":["ctrl","shift","t"]}`}},
		{"Press/plus", func(ctx context.Context, sb *client.Sandbox) error { return sb.Press(ctx, "+") },
			sent{"POST", "/v1/action", "", `{"type":"key","keys":["+"]}`}},
		{"Press/one", func(ctx context.Context, sb *client.Sandbox) error { return sb.Press(ctx, "Return") },
			sent{"POST", "/v1/action", "", `{"type":"key","keys":["Return"]}`}},
		{"Wait", func(ctx context.Context, sb *client.Sandbox) error { return sb.Wait(ctx, 20*time.Millisecond) },
			sent{"POST", "/v1/action", "", `{"type":"wait","duration_ms":20}`}},
		{"Wait/rounds-up", func(ctx context.Context, sb *client.Sandbox) error { return sb.Wait(ctx, 1500*time.Microsecond) },
			sent{"POST", "/v1/action", "", `{"type":"wait","duration_ms":2}`}},
		{"Act", func(ctx context.Context, sb *client.Sandbox) error {
			return ignore(sb.Act(ctx, desktop.Action{Type: desktop.HoldKey, Keys: []string{"shift"}, DurationMS: 5}))
		}, sent{"POST", "/v1/action", "", `{"type":"hold_key","keys":["shift"],"duration_ms":5}`}},
		{"Screenshot", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.Screenshot(ctx)) },
			sent{"GET", "/v1/screenshot", "", ""}},
		{"ScreenshotWith", func(ctx context.Context, sb *client.Sandbox) error {
			return ignore(sb.ScreenshotWith(ctx, desktop.ScreenshotOptions{Format: "jpg", Quality: 70,
				Region: &desktop.Rect{X: 10, Y: 20, Width: 300, Height: 200}, Width: 150, Height: 100, Cursor: true}))
		}, sent{"GET", "/v1/screenshot", "cursor=true&format=jpeg&height=100&quality=70&region=10%2C20%2C300%2C200&width=150", ""}},
		{"GetCursorPosition", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.GetCursorPosition(ctx)) },
			sent{"GET", "/v1/cursor", "", ""}},
		{"GetScreenSize", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.GetScreenSize(ctx)) },
			sent{"GET", "/v1/screen", "", ""}},
		{"Windows", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.Windows(ctx)) },
			sent{"GET", "/v1/windows", "", ""}},
		{"FindWindows", func(ctx context.Context, sb *client.Sandbox) error {
			return ignore(sb.FindWindows(ctx, client.WindowFilter{Class: "firefox-esr", Title: "Mozilla & co"}))
		}, sent{"GET", "/v1/windows", "class=firefox-esr&title=Mozilla+%26+co", ""}},
		{"GetApplicationWindows", func(ctx context.Context, sb *client.Sandbox) error {
			return ignore(sb.GetApplicationWindows(ctx, "xfce4-terminal"))
		}, sent{"GET", "/v1/windows", "class=xfce4-terminal", ""}},
		{"GetCurrentWindowID", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.GetCurrentWindowID(ctx)) },
			sent{"GET", "/v1/windows/active", "", ""}},
		{"GetWindowTitle", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.GetWindowTitle(ctx, 12)) },
			sent{"GET", "/v1/windows/12", "", ""}},
		{"FocusWindow", func(ctx context.Context, sb *client.Sandbox) error { return sb.FocusWindow(ctx, 34) },
			sent{"POST", "/v1/windows/34/focus", "", ""}},
		{"Clipboard", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.Clipboard(ctx)) },
			sent{"GET", "/v1/clipboard", "", ""}},
		{"SetClipboard", func(ctx context.Context, sb *client.Sandbox) error { return sb.SetClipboard(ctx, "copied €") },
			sent{"PUT", "/v1/clipboard", "", `{"text":"copied €"}`}},
		{"Launch", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.Launch(ctx, "xfce4-terminal")) },
			sent{"POST", "/v1/launch", "", `{"app":"xfce4-terminal"}`}},
		{"Launch/uri", func(ctx context.Context, sb *client.Sandbox) error {
			return ignore(sb.Launch(ctx, "firefox-esr", "https://example.com/?q=1"))
		}, sent{"POST", "/v1/launch", "", `{"app":"firefox-esr","uri":"https://example.com/?q=1"}`}},
		{"LaunchCommand", func(ctx context.Context, sb *client.Sandbox) error {
			return ignore(sb.LaunchCommand(ctx, "xterm", "-e", "top; rm -rf /"))
		}, sent{"POST", "/v1/launch", "", `{"command":["xterm","-e","top; rm -rf /"]}`}},
		{"Open", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.Open(ctx, "/tmp/a b.txt")) },
			sent{"POST", "/v1/open", "", `{"target":"/tmp/a b.txt"}`}},
		{"Ready", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.Ready(ctx)) },
			sent{"GET", "/v1/ready", "", ""}},
		{"WaitReady", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.WaitReady(ctx, 90*time.Second)) },
			sent{"GET", "/v1/ready", "wait=1m30s", ""}},
		{"WaitReady/capped", func(ctx context.Context, sb *client.Sandbox) error { return ignore(sb.WaitReady(ctx, time.Hour)) },
			sent{"GET", "/v1/ready", "wait=5m0s", ""}},
		{"Do", func(ctx context.Context, sb *client.Sandbox) error {
			return ignore(sb.Do(ctx, desktop.Action{Type: desktop.Move}.At(1, 2), desktop.Action{Type: desktop.Click}))
		}, sent{"POST", "/v1/actions", "", `{"actions":[{"type":"move","x":1,"y":2},{"type":"click"}]}`}},
		{"DoBatch", func(ctx context.Context, sb *client.Sandbox) error {
			return ignore(sb.DoBatch(ctx, desktop.Batch{
				Actions:    []desktop.Action{{Type: desktop.Type, Text: "hi", Paste: true}},
				Settle:     &desktop.Settle{QuietMS: 50, TimeoutMS: 500},
				Screenshot: &desktop.ScreenshotOptions{Format: "jpeg", Width: 512},
			}))
		}, sent{"POST", "/v1/actions", "",
			`{"actions":[{"type":"type","text":"hi","paste":true}],"settle":{"quiet_ms":50,"timeout_ms":500},"screenshot":{"format":"jpeg","width":512}}`}},
		{"StartStream", func(ctx context.Context, sb *client.Sandbox) error {
			return ignore(sb.StartStream(ctx, client.StreamOptions{}))
		},
			sent{"POST", "/v1/stream", "", `{}`}},
		{"StartStream/window", func(ctx context.Context, sb *client.Sandbox) error {
			return ignore(sb.StartStream(ctx, client.StreamOptions{Window: 12}))
		}, sent{"POST", "/v1/stream", "", `{"window":12}`}},
		{"StopStream", func(ctx context.Context, sb *client.Sandbox) error { return sb.StopStream(ctx) },
			sent{"DELETE", "/v1/stream", "", ""}},
		{"Health", func(ctx context.Context, sb *client.Sandbox) error { return sb.Health(ctx) },
			sent{"GET", "/health", "", ""}},
	}
	a, sb := start(t, clienttest.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.ClearRequests()
			if err := tt.call(t.Context(), sb); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			reqs := a.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%s sent %d requests, want 1: %v", tt.name, len(reqs), reqs)
			}
			want := tt.want
			want.Body = canonJSON(t, []byte(want.Body))
			if diff := cmp.Diff(want, sentOf(t, reqs[0])); diff != "" {
				t.Errorf("%s sent (-want +got):\n%s", tt.name, diff)
			}
			h := reqs[0].Header
			if got := h.Get("X-Access-Token"); got != testToken {
				t.Errorf("X-Access-Token = %q, want %q", got, testToken)
			}
			if got, want := h.Get("User-Agent"), "cubicle-test/1"; got != want {
				t.Errorf("User-Agent = %q, want %q", got, want)
			}
			if ct := h.Get("Content-Type"); (len(reqs[0].Body) > 0) != (ct == "application/json") {
				t.Errorf("Content-Type = %q with a body of %d bytes", ct, len(reqs[0].Body))
			}
		})
	}
}

func TestResults(t *testing.T) {
	a, sb := start(t, clienttest.Options{Screen: desktop.Size{Width: 800, Height: 600}})
	ctx := t.Context()
	check := func(name string, got, want any, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}

	if err := sb.MoveMouse(ctx, 5, 6); err != nil {
		t.Fatal(err)
	}
	p, err := sb.GetCursorPosition(ctx)
	check("GetCursorPosition", p, desktop.Point{X: 5, Y: 6}, err)
	sz, err := sb.GetScreenSize(ctx)
	check("GetScreenSize", sz, desktop.Size{Width: 800, Height: 600}, err)

	res, err := sb.Act(ctx, desktop.Action{Type: desktop.Click}.At(9, 10))
	check("Act", res, &desktop.ActionResult{Type: desktop.Click, Cursor: &desktop.Point{X: 9, Y: 10}}, err)

	ws, err := sb.Windows(ctx)
	check("Windows", ws, testWindows(), err)
	ws, err = sb.GetApplicationWindows(ctx, "XFCE4-TERMINAL")
	check("GetApplicationWindows", ws, testWindows()[:1], err)
	ws, err = sb.FindWindows(ctx, client.WindowFilter{Title: "nothing like it"})
	check("FindWindows none", ws, []desktop.Window{}, err)
	id, err := sb.GetCurrentWindowID(ctx)
	check("GetCurrentWindowID", id, uint32(12), err)
	title, err := sb.GetWindowTitle(ctx, 34)
	check("GetWindowTitle", title, "Mozilla Firefox", err)
	if err := sb.FocusWindow(ctx, 34); err != nil {
		t.Fatal(err)
	}
	id, err = sb.GetCurrentWindowID(ctx)
	check("GetCurrentWindowID after FocusWindow", id, uint32(34), err)

	if err := sb.SetClipboard(ctx, "zwei Wörter ✓"); err != nil {
		t.Fatal(err)
	}
	clip, err := sb.Clipboard(ctx)
	check("Clipboard", clip, "zwei Wörter ✓", err)
	check("fake clipboard", a.Clipboard(), "zwei Wörter ✓", nil)

	pid, err := sb.Launch(ctx, "xfce4-terminal")
	check("Launch", pid, 1000, err)
	pid, err = sb.LaunchCommand(ctx, "xterm")
	check("LaunchCommand", pid, 1001, err)
	pid, err = sb.Open(ctx, "https://example.com")
	check("Open", pid, 1002, err)

	st, err := sb.StartStream(ctx, client.StreamOptions{})
	check("StartStream", st, &client.Stream{Address: "127.0.0.1:5900"}, err)
	if err := sb.StopStream(ctx); err != nil {
		t.Fatal(err)
	}
	check("stream after StopStream", a.Stream(), "", nil)

	rd, err := sb.Ready(ctx)
	check("Ready", rd.Ready, true, err)
	check("Ready screen", rd.Screen, &desktop.Size{Width: 800, Height: 600}, nil)
}

func TestConnectAgentURL(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"127.0.0.1:49983", "http://127.0.0.1:49983"},
		{"http://127.0.0.1:49983/", "http://127.0.0.1:49983"},
		{" https://box.example.com/agent/ ", "https://box.example.com/agent"},
	}
	for _, tt := range tests {
		sb, err := client.ConnectAgent(tt.in)
		if err != nil {
			t.Errorf("ConnectAgent(%q): %v", tt.in, err)
			continue
		}
		if got := sb.AgentURL(); got != tt.want {
			t.Errorf("ConnectAgent(%q).AgentURL() = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "ftp://host/", "http://", "http://host:1/?x=1", "http://host:1/#f", "http://[::1"} {
		_, err := client.ConnectAgent(bad)
		if !isClass(err, client.ErrInvalid) {
			t.Errorf("ConnectAgent(%q) = %v, want an error of class ErrInvalid", bad, err)
		}
	}
}

// countingTransport counts the requests that go through it.
type countingTransport struct {
	n    int
	next http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n++
	return c.next.RoundTrip(r)
}

func TestWithHTTPClient(t *testing.T) {
	a := clienttest.Start(t, clienttest.Options{})
	ct := &countingTransport{next: http.DefaultTransport}
	sb, err := client.ConnectAgent(a.URL, client.WithHTTPClient(&http.Client{Transport: ct}))
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.LeftClick(t.Context(), 1, 1); err != nil {
		t.Fatal(err)
	}
	if ct.n != 1 {
		t.Errorf("the given client carried %d requests, want 1", ct.n)
	}
	reqs := a.Requests()
	if got := reqs[len(reqs)-1].Header.Get("X-Access-Token"); got != "" {
		t.Errorf("X-Access-Token = %q without WithToken, want none", got)
	}
}

// TestKeepAlive checks that calls, failed ones included, reuse one
// connection: bodies are drained and closed, and no transport is made per
// call.
func TestKeepAlive(t *testing.T) {
	a, sb := start(t, clienttest.Options{Screen: desktop.Size{Width: 64, Height: 48}})
	ctx := t.Context()
	for i := range 10 {
		if err := sb.LeftClick(ctx, i, i); err != nil {
			t.Fatal(err)
		}
		if err := sb.Press(ctx, "no-such-key"); err == nil {
			t.Fatal("Press(no-such-key) succeeded")
		}
		if _, err := sb.Screenshot(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Do(ctx, desktop.Action{Type: desktop.FocusWindow, Window: 999}); err == nil {
			t.Fatal("focus on window 999 succeeded")
		}
		if _, err := sb.GetWindowTitle(ctx, 999); err == nil {
			t.Fatal("GetWindowTitle(999) succeeded")
		}
	}
	if got := a.Conns(); got != 1 {
		t.Errorf("50 sequential calls opened %d connections, want 1", got)
	}
}

func BenchmarkLeftClick(b *testing.B) {
	a := clienttest.New(clienttest.Options{})
	defer a.Close()
	sb, err := client.ConnectAgent(a.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	ctx := context.Background()
	for b.Loop() {
		if err := sb.LeftClick(ctx, 10, 10); err != nil {
			b.Fatal(err)
		}
	}
}

// freeURL returns the URL of a loopback port where nothing listens.
func freeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}
