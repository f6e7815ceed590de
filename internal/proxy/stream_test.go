package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestStreamingFlowsIncrementally(t *testing.T) {
	w := twoBoxes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := w.newRequest("POST", "", "/sandboxes/"+idA+"/agent/stream", nil).WithContext(ctx)
	req.Header.Set("X-Access-Token", tokenA)
	res, err := w.front.Client().Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer res.Body.Close()
	lines := bufio.NewReader(res.Body)

	// The service holds its second line back until the first one is read
	// here: buffering anywhere on the way would deadlock (until ctx ends).
	first, err := lines.ReadString('\n')
	if err != nil {
		t.Fatalf("read first line: %v", err)
	}
	if first != `{"type":"start"}`+"\n" {
		t.Errorf("first line = %q, want the start event", first)
	}
	close(w.boxes[idA].rec.release)
	rest, err := io.ReadAll(lines)
	if err != nil {
		t.Fatalf("read rest: %v", err)
	}
	if string(rest) != `{"type":"end"}`+"\n" {
		t.Errorf("rest = %q, want the end event", rest)
	}
}

// TestBodyAfterResponseBegins sends the rest of a request body only once
// the answer has begun: the proxy must go on forwarding the body after it
// flushed the first bytes of the answer back.
func TestBodyAfterResponseBegins(t *testing.T) {
	w := twoBoxes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req := w.newRequest("POST", "", "/sandboxes/"+idA+"/agent/duplex", pr).WithContext(ctx)
	req.Header.Set("X-Access-Token", tokenA)
	go io.WriteString(pw, "one\n")
	res, err := w.front.Client().Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer res.Body.Close()
	lines := bufio.NewReader(res.Body)
	if got, err := lines.ReadString('\n'); got != "echo one\n" {
		t.Fatalf("first line = %q, %v; want the echo of the first", got, err)
	}
	go func() { // the write blocks if nobody forwards the body any more
		io.WriteString(pw, "two\n")
		pw.Close()
	}()
	rest, err := io.ReadAll(lines)
	if err != nil || string(rest) != "echo two\n" {
		t.Errorf("rest = %q, %v; want the echo of the part sent after the answer began", rest, err)
	}
}

func TestClientCancelReachesSandbox(t *testing.T) {
	w := twoBoxes(t)
	rec := w.boxes[idA].rec
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := w.newRequest("GET", "", "/sandboxes/"+idA+"/agent/block", nil).WithContext(ctx)
	req.Header.Set("X-Access-Token", tokenA)
	res, err := w.front.Client().Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer res.Body.Close()
	waitFor(t, rec.started, "the service to start")
	cancel()
	if err := waitFor(t, rec.finished, "the service to see the cancel"); !errors.Is(err, context.Canceled) {
		t.Errorf("service request ended with %v, want context.Canceled", err)
	}
}

func TestLargeUploadStreams(t *testing.T) {
	w := twoBoxes(t)
	const size = 50 << 20
	h := sha256.New()
	body := io.TeeReader(io.LimitReader(&pattern{}, size), h)
	// No Content-Length: the body goes chunked, as undici sends it.
	req := w.newRequest("PUT", "49983-"+idB+"."+testDomain, "/v1/files?path=/home/user/big", io.NopCloser(body))
	req.Header.Set("X-Access-Token", tokenB)
	status, s, e := w.do(req)
	if status != http.StatusOK {
		t.Fatalf("status = %d (%+v), want 200", status, e.Error)
	}
	if want := hex.EncodeToString(h.Sum(nil)); s.BodyLen != size || s.BodySHA != want {
		t.Errorf("sandbox got %d bytes sha256 %s, want %d bytes sha256 %s", s.BodyLen, s.BodySHA, size, want)
	}
}

// pattern is an endless deterministic byte stream.
type pattern struct{ n byte }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = p.n
		p.n = p.n*31 + 7
	}
	return len(b), nil
}

// dialWS opens a WebSocket to sandbox id's VNC port through the proxy, by
// the path form or (host true) by Host, with the token in the query.
func dialWS(t *testing.T, ctx context.Context, w *world, id, token string, host bool) *websocket.Conn {
	t.Helper()
	u, opts := "", &websocket.DialOptions{}
	if host {
		u = "ws://6080-" + id + "." + testDomain + "/ws?access_token=" + url.QueryEscape(token) + "&keep=1"
		opts.HTTPClient = hostDialer(w.front.Listener.Addr().String(), w.front.Client().Transport.(*http.Transport))
	} else {
		u = "ws" + strings.TrimPrefix(w.front.URL, "http") + "/sandboxes/" + id + "/port/6080/ws?keep=1&access_token=" + url.QueryEscape(token)
	}
	c, res, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("dial %s: status %d", u, res.StatusCode)
	}
	c.SetReadLimit(1 << 20)
	return c
}

func echo(ctx context.Context, c *websocket.Conn, msg string) (string, error) {
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return "", err
	}
	_, data, err := c.Read(ctx)
	return string(data), err
}

func TestWebSocketEcho(t *testing.T) {
	w := twoBoxes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		host bool
		id   string
	}{{"path form A", false, idA}, {"host form B", true, idB}} {
		t.Run(tc.name, func(t *testing.T) {
			token := map[string]string{idA: tokenA, idB: tokenB}[tc.id]
			c := dialWS(t, ctx, w, tc.id, token, tc.host)
			defer c.CloseNow()
			for _, msg := range []string{"hello", strings.Repeat("x", 100_000)} {
				got, err := echo(ctx, c, msg)
				if err != nil {
					t.Fatalf("echo: %v", err)
				}
				if want := tc.id + ":" + msg; got != want {
					t.Errorf("echo = %.40q (%d bytes), want %.40q (%d bytes)", got, len(got), want, len(want))
				}
			}
			c.Close(websocket.StatusNormalClosure, "")
			reqs := w.boxes[tc.id].rec.requests()
			last := reqs[len(reqs)-1]
			if !last.Websocket || last.RawQuery != "keep=1" || last.Token != "" {
				t.Errorf("service saw query %q token %q websocket %v, want query keep=1 and no token (port 6080 is not the agent)",
					last.RawQuery, last.Token, last.Websocket)
			}
		})
	}
}

func TestWebSocketNeedsToken(t *testing.T) {
	w := twoBoxes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := "ws" + strings.TrimPrefix(w.front.URL, "http") + "/sandboxes/" + idA + "/port/6080/ws"
	for name, u := range map[string]string{
		"no token": base,
		"B token":  base + "?access_token=" + tokenB,
	} {
		t.Run(name, func(t *testing.T) {
			c, res, err := websocket.Dial(ctx, u, nil)
			if err == nil {
				c.CloseNow()
				t.Fatalf("dial succeeded, want 401")
			}
			if res == nil || res.StatusCode != http.StatusUnauthorized {
				t.Errorf("dial: %v (response %v), want status 401", err, res)
			}
		})
	}
}

func TestCloseSandboxCutsStreams(t *testing.T) {
	w := twoBoxes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	wsA := dialWS(t, ctx, w, idA, tokenA, false)
	defer wsA.CloseNow()
	wsB := dialWS(t, ctx, w, idB, tokenB, true)
	defer wsB.CloseNow()
	for _, c := range []*websocket.Conn{wsA, wsB} {
		if _, err := echo(ctx, c, "ping"); err != nil {
			t.Fatalf("echo before close: %v", err)
		}
	}
	// An NDJSON follow stream to A, too.
	req := w.newRequest("GET", "", "/sandboxes/"+idA+"/agent/follow", nil).WithContext(ctx)
	req.Header.Set("X-Access-Token", tokenA)
	res, err := w.front.Client().Do(req)
	if err != nil {
		t.Fatalf("GET follow: %v", err)
	}
	defer res.Body.Close()
	follow := bufio.NewReader(res.Body)
	if _, err := follow.ReadString('\n'); err != nil {
		t.Fatalf("read first follow line: %v", err)
	}

	w.setState(idA, "paused")
	w.proxy.CloseSandbox(idA)

	if _, _, err := wsA.Read(ctx); err == nil || ctx.Err() != nil {
		t.Errorf("read on A's WebSocket after CloseSandbox: err %v (ctx %v), want the connection cut", err, ctx.Err())
	}
	if _, err := io.ReadAll(follow); err == nil || ctx.Err() != nil {
		t.Errorf("A's follow stream after CloseSandbox: err %v (ctx %v), want it cut", err, ctx.Err())
	}
	if got, err := echo(ctx, wsB, "still"); err != nil || got != idB+":still" {
		t.Errorf("B's WebSocket after closing A: %q, %v; want it untouched", got, err)
	}
	// A's services see their connections end.
	for range 2 {
		waitFor(t, w.boxes[idA].rec.finished, "A's services to see the cut")
	}

	// A paused sandbox answers 502 and opens nothing.
	req = w.newRequest("GET", "", "/sandboxes/"+idA+"/agent/v1/ready", nil)
	req.Header.Set("X-Access-Token", tokenA)
	if status, _, e := w.do(req); status != http.StatusBadGateway {
		t.Errorf("paused A: status %d (%+v), want 502", status, e.Error)
	}

	// Close cuts everything else.
	w.proxy.Close()
	if _, _, err := wsB.Read(ctx); err == nil || ctx.Err() != nil {
		t.Errorf("read on B's WebSocket after Close: err %v (ctx %v), want the connection cut", err, ctx.Err())
	}
}

func TestResumeAfterCloseSandbox(t *testing.T) {
	w := twoBoxes(t)
	get := func() int {
		req := w.newRequest("GET", "", "/sandboxes/"+idA+"/agent/v1/ready", nil)
		req.Header.Set("X-Access-Token", tokenA)
		status, _, _ := w.do(req)
		return status
	}
	if got := get(); got != http.StatusOK {
		t.Fatalf("before: status %d, want 200", got)
	}
	w.proxy.CloseSandbox(idA)
	if got := get(); got != http.StatusOK {
		t.Errorf("after CloseSandbox of a running sandbox: status %d, want 200 on new connections", got)
	}
}

func TestCloseSandboxDuringResolve(t *testing.T) {
	// The pause lands between the lookup and the first connection: the
	// request must see it and open nothing.
	var w *world
	calls := 0
	w = newWorld(t, func(c *Config) {
		c.Resolve = func(ctx context.Context, id string) (Target, error) {
			tgt, err := w.resolve(ctx, id)
			calls++
			if calls == 1 {
				w.setState(id, "paused")
				w.proxy.CloseSandbox(id)
			}
			return tgt, err
		}
	})
	rec := w.addBox(idA, tokenA, StateRunning, "127.0.0.1", AgentPort)
	req := w.newRequest("GET", "", "/sandboxes/"+idA+"/agent/v1/ready", nil)
	req.Header.Set("X-Access-Token", tokenA)
	status, _, e := w.do(req)
	if status != http.StatusBadGateway || !strings.Contains(e.Error.Message, "paused") {
		t.Errorf("status %d (%+v), want 502 saying the sandbox is paused", status, e.Error)
	}
	if calls != 2 {
		t.Errorf("Resolve called %d times, want 2", calls)
	}
	if got := rec.requests(); len(got) != 0 {
		t.Errorf("the paused sandbox got %d requests", len(got))
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("traffic", func(t *testing.T) {
		// The clients close last, after the world's cleanup has cut their
		// connections from the proxy's side.
		var ws *websocket.Conn
		var res *http.Response
		t.Cleanup(func() {
			if ws != nil {
				ws.CloseNow()
			}
			if res != nil {
				res.Body.Close()
			}
		})
		w := twoBoxes(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		ws = dialWS(t, ctx, w, idA, tokenA, false)
		if _, err := echo(ctx, ws, "x"); err != nil {
			t.Fatalf("echo: %v", err)
		}
		req := w.newRequest("GET", "", "/sandboxes/"+idB+"/agent/follow", nil).WithContext(ctx)
		req.Header.Set("X-Access-Token", tokenB)
		var err error
		if res, err = w.front.Client().Do(req); err != nil {
			t.Fatalf("GET follow: %v", err)
		}
		waitFor(t, w.boxes[idB].rec.started, "the follow stream")
	})
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
