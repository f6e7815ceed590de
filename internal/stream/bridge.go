package stream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Why a stream ended: the WebSocket close code and the stable word that
// starts the close reason.
type endCause struct {
	code websocket.StatusCode
	word string
}

var (
	endViewer      = endCause{websocket.StatusNormalClosure, "closed"}
	endSandboxGone = endCause{4000, "sandbox_gone"}
	endRevoked     = endCause{4001, ReasonTokenRevoked}
	endExpired     = endCause{4002, ReasonTokenExpired}
	endProtocol    = endCause{4003, "rfb_protocol_error"}
	endUpstream    = endCause{4004, "desktop_stream_ended"}
	endShutdown    = endCause{websocket.StatusGoingAway, "server_stopping"}
)

// session is one open stream.
type session struct {
	claims Claims
	once   sync.Once
	cause  endCause
	detail string
	done   chan struct{}
}

// end stops the stream for the first cause given.
func (ss *session) end(c endCause, detail string) {
	ss.once.Do(func() {
		ss.cause, ss.detail = c, detail
		close(ss.done)
	})
}

// closeReason is "word: detail", within the 123 bytes a close frame allows.
func (ss *session) closeReason() string {
	r := ss.cause.word
	if ss.detail != "" {
		r += ": " + ss.detail
	}
	if len(r) > 123 {
		r = r[:123]
	}
	return r
}

// upstreamGrace is how long a stream whose VNC server went away waits to
// learn whether its sandbox stopped running.
const upstreamGrace = 3 * time.Second

// agentUpgradeTimeout bounds the upgrade request to the agent, which may
// start x11vnc first.
const agentUpgradeTimeout = 45 * time.Second

// serveRFB bridges an authorized viewer's WebSocket to the sandbox.
func (s *Service) serveRFB(w http.ResponseWriter, r *http.Request, c Claims) error {
	rt, ok := s.sb.Route(c.Sandbox)
	if !ok {
		return desktop.Errorf(desktop.CodeUnavailable, "sandbox %s is not running; resume it to view it", c.Sandbox)
	}
	up, err := s.dialAgent(r.Context(), rt.Agent, rt.Token, c.Window)
	if err != nil {
		return err
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    []string{"binary"},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		up.Close()
		return nil // Accept has answered
	}
	ss := &session{claims: c, done: make(chan struct{})}
	if !s.add(ss) {
		up.Close()
		ws.Close(endShutdown.code, endShutdown.word)
		return nil
	}
	defer s.remove(ss)
	start := time.Now()
	s.log.Info("stream opened", "sandbox_id", c.Sandbox, "token_id", c.ID, "mode", c.Mode())
	f := s.bridge(ss, ws, up)
	s.log.Info("stream closed", "sandbox_id", c.Sandbox, "token_id", c.ID, "reason", ss.closeReason(),
		"dropped_messages", f.Dropped(), "duration_ms", time.Since(start).Milliseconds())
	return nil
}

// bridge copies between the viewer and the agent until the session ends,
// then closes both and waits for its copies.
func (s *Service) bridge(ss *session, ws *websocket.Conn, up net.Conn) *Filter {
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	f := NewFilter(up, ss.claims.ViewOnly)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := io.Copy(f, nc)
		switch {
		case errors.Is(err, ErrProtocol):
			ss.end(endProtocol, err.Error())
		default:
			ss.end(endViewer, "")
		}
	})
	wg.Go(func() {
		io.Copy(nc, up)
		// A sandbox being killed or paused loses its VNC server before the
		// manager says it stopped: give the watcher the time to tell.
		t := time.NewTimer(upstreamGrace)
		defer t.Stop()
		select {
		case <-ss.done:
		case <-t.C:
		}
		ss.end(endUpstream, "the desktop's VNC server closed the stream")
	})
	<-ss.done
	up.Close()
	if ss.cause == endViewer {
		ws.CloseNow()
	} else {
		// Close sends the reason and waits a little for the viewer's
		// answer; the reading copy sees the close and ends.
		ws.Close(ss.cause.code, ss.closeReason())
		ws.CloseNow()
	}
	wg.Wait()
	return f
}

// dialAgent opens the RFB tunnel of the agent at addr (GET /v1/stream/rfb
// with Upgrade: rfb).
func (s *Service) dialAgent(ctx context.Context, addr netip.AddrPort, token string, window uint32) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, agentUpgradeTimeout)
	defer cancel()
	conn, err := s.cfg.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("stream: reach the sandbox agent: %v: %w", err, desktop.ErrUnavailable)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	u := "http://" + addr.String() + "/v1/stream/rfb"
	if window != 0 {
		u += "?window=" + strconv.FormatUint(uint64(window), 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("stream: %w", err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "rfb")
	req.Header.Set("X-Access-Token", token)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("stream: upgrade request to the agent: %v: %w", err, desktop.ErrUnavailable)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("stream: answer of the agent: %v: %w", err, desktop.ErrUnavailable)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		var body struct {
			Error *desktop.Error `json:"error"`
		}
		json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
		if body.Error != nil && body.Error.Code != desktop.CodeInternal {
			return nil, body.Error
		}
		return nil, fmt.Errorf("stream: the agent answered %s to the stream request: %w", resp.Status, desktop.ErrUnavailable)
	}
	if !stop() {
		conn.Close()
		return nil, fmt.Errorf("stream: upgrade to the agent: %w", ctx.Err())
	}
	conn.SetDeadline(time.Time{})
	return &bufferedConn{Conn: conn, r: br}, nil
}

// bufferedConn reads what the response reader buffered before the conn.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
