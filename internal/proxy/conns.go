package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// errSandboxClosed is the cause when a request races CloseSandbox or Close.
var errSandboxClosed = errors.New("proxy: sandbox connections closed")

// sandboxConns owns every connection the proxy holds for one sandbox: the
// connections to its services (pooled by its own transport, so that no
// connection is ever reused for another sandbox) and the client connections
// hijacked for WebSocket and other upgrades.
type sandboxConns struct {
	id        string
	transport *http.Transport

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func newSandboxConns(id string, dialTimeout time.Duration) *sandboxConns {
	sb := &sandboxConns{id: id, conns: make(map[*trackedConn]struct{})}
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	sb.transport = &http.Transport{
		Proxy: nil, // never an environment proxy: sandboxes are reached directly
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return sb.track(c)
		},
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Pass encodings through untouched instead of asking for gzip and
		// decoding it here.
		DisableCompression: true,
	}
	return sb
}

// track registers c so that close can cut it; it refuses, and closes c,
// once the sandbox's connections are closed.
func (sb *sandboxConns) track(c net.Conn) (*trackedConn, error) {
	tc := &trackedConn{Conn: c, owner: sb}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.closed {
		c.Close()
		return nil, errSandboxClosed
	}
	sb.conns[tc] = struct{}{}
	return tc, nil
}

func (sb *sandboxConns) untrack(tc *trackedConn) {
	sb.mu.Lock()
	delete(sb.conns, tc)
	sb.mu.Unlock()
}

// close cuts every connection of the sandbox and refuses new ones.
func (sb *sandboxConns) close() {
	sb.mu.Lock()
	sb.closed = true
	conns := make([]*trackedConn, 0, len(sb.conns))
	for tc := range sb.conns {
		conns = append(conns, tc)
	}
	sb.mu.Unlock()
	for _, tc := range conns {
		tc.Close()
	}
	sb.transport.CloseIdleConnections()
}

// trackedConn is a connection that leaves its owner's set when closed.
type trackedConn struct {
	net.Conn
	owner *sandboxConns
	once  sync.Once
	err   error
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.err = c.Conn.Close()
		c.owner.untrack(c)
	})
	return c.err
}

// CloseWrite half-closes the connection when it can, so that an upgraded
// stream's end reaches the other side.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("proxy: connection cannot half-close")
}

// trackingWriter registers the client connection that ReverseProxy hijacks
// for an upgrade with the sandbox it goes to.
type trackingWriter struct {
	http.ResponseWriter
	sb *sandboxConns
}

// Hijack hands over the client connection, tracked.
func (w *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	tc, err := w.sb.track(c)
	if err != nil {
		return nil, nil, err
	}
	return tc, brw, nil
}

// Unwrap lets http.ResponseController reach Flush and the deadlines.
func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sandbox returns the connection set of id, creating it; nil once the proxy
// is closed. current is false when CloseSandbox ran since gen was read.
func (p *Proxy) sandbox(id string, gen uint64) (sb *sandboxConns, current bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false
	}
	sb, ok := p.sandboxes[id]
	if !ok {
		sb = newSandboxConns(id, p.cfg.DialTimeout)
		p.sandboxes[id] = sb
	}
	return sb, p.closeGen.Load() == gen
}

// CloseSandbox cuts every connection to and from sandbox id at once: open
// WebSockets, streams in progress and idle pooled connections, and forgets
// the sandbox. Call it after a sandbox's state leaves "running" (kill,
// pause, timeout): a request that was looking the sandbox up meanwhile looks
// again and sees the new state. Later requests open new connections.
func (p *Proxy) CloseSandbox(id string) {
	p.mu.Lock()
	sb, ok := p.sandboxes[id]
	delete(p.sandboxes, id)
	p.closeGen.Add(1)
	p.mu.Unlock()
	if ok {
		sb.close()
	}
}

// Close cuts every connection of every sandbox, hijacked ones included
// (http.Server.Shutdown does not close those), and makes the proxy answer
// 503 from then on. It always returns nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	all := p.sandboxes
	p.sandboxes = nil
	p.mu.Unlock()
	for _, sb := range all {
		sb.close()
	}
	return nil
}
