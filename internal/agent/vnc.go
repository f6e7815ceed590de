package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/display"
)

// RFBUpgrade is the Upgrade protocol of GET /v1/stream/rfb.
const RFBUpgrade = "rfb"

// handleRFB carries the RFB byte stream of the desktop's VNC server over
// this HTTP connection, so that a client outside the sandbox, which cannot
// reach the sandbox's loopback, can view it. The request asks for
// "Connection: Upgrade" and "Upgrade: rfb"; the agent starts x11vnc when it
// is not running (query window=<id> shows one window), dials it on
// loopback, answers 101 Switching Protocols and then copies bytes both
// ways until either side closes or the agent stops. Every viewer gets its
// own connection to x11vnc, which runs with -shared.
func (a *Agent) handleRFB(w http.ResponseWriter, r *http.Request) error {
	if !headerHas(r.Header, "Connection", "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), RFBUpgrade) {
		return desktop.Errorf(desktop.CodeInvalid, "GET /v1/stream/rfb upgrades the connection: send Connection: Upgrade and Upgrade: %s", RFBUpgrade)
	}
	var win uint32
	if s := r.URL.Query().Get("window"); s != "" {
		n, err := strconv.ParseUint(s, 0, 32)
		if err != nil {
			return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "window",
				Message: fmt.Sprintf("window=%q is not a window id such as 0x1e00004", s)}
		}
		win = uint32(n)
	}
	if a.sup == nil {
		return desktop.Errorf(desktop.CodeConflict, "this agent does not manage its display (started without --manage); run a VNC server yourself")
	}
	if _, err := a.conn(); err != nil {
		return err
	}
	addr, err := a.sup.StartVNC(r.Context(), display.VNCOptions{Window: win})
	if err != nil {
		return err
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	up, err := d.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return fmt.Errorf("agent: stream: dial x11vnc: %v: %w", err, desktop.ErrUnavailable)
	}
	down, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return fmt.Errorf("agent: stream: hijack: %w", err)
	}
	down.SetDeadline(time.Time{})
	pipeRFB(r.Context(), down, brw.Reader, up)
	return nil
}

// pipeRFB answers 101 on down and copies bytes between down and up until
// either side ends or ctx does; it closes both before it returns.
func pipeRFB(ctx context.Context, down net.Conn, buffered io.Reader, up net.Conn) {
	defer down.Close()
	defer up.Close()
	if _, err := io.WriteString(down, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+RFBUpgrade+"\r\n\r\n"); err != nil {
		return
	}
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			down.Close()
			up.Close()
		})
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer closeBoth()
		io.Copy(up, buffered) // what the client sent after its request, then the rest
	})
	wg.Go(func() {
		defer closeBoth()
		io.Copy(down, up)
	})
	wg.Wait()
}

// headerHas reports whether the comma-separated header name lists token.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}
