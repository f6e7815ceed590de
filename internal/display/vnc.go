package display

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// vncReadyTimeout bounds the wait for x11vnc's RFB banner.
const vncReadyTimeout = 30 * time.Second

// vncKey names a set of options: a running x11vnc started with other
// options is replaced.
func vncKey(o VNCOptions) string {
	return strconv.FormatUint(uint64(o.Window), 16) + "/" + strconv.FormatBool(o.ViewOnly)
}

// vncArgs returns x11vnc's arguments.
func vncArgs(display string, port int, o VNCOptions) []string {
	args := []string{
		"-display", display,
		"-rfbport", strconv.Itoa(port),
		"-localhost", // loopback only: the server's proxy is the way in
		"-nopw", "-forever", "-shared", "-quiet",
		// Without naps, a change after a quiet spell reaches a viewer in
		// about 30 ms instead of up to 3 s; it costs about 0.8% of a core
		// more while a viewer is connected and nothing without one.
		"-nonap",
		"-nowf",      // no wireframe: it draws outlines while windows move
		"-nowcr",     // no copyrect guesses from window moves
		"-noxrecord", // no XRECORD scroll detection
		"-nobell",
	}
	if o.ViewOnly {
		args = append(args, "-viewonly")
	}
	if o.Window != 0 {
		args = append(args, "-id", "0x"+strconv.FormatUint(uint64(o.Window), 16))
	}
	return args
}

func (s *Supervisor) vncAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.VNCPort))
}

// StartVNC starts x11vnc on the loopback port of Config.VNCPort, showing
// what o says, and returns its address once the port answers with an RFB
// banner. While it is wanted it is supervised like the other parts. Calling
// StartVNC again while it runs with the same options returns the same
// address; with other options the running x11vnc is replaced (viewers must
// reconnect).
func (s *Supervisor) StartVNC(ctx context.Context, o VNCOptions) (string, error) {
	key := vncKey(o)
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return "", fmt.Errorf("display: start vnc: desktop not running: %w", desktop.ErrUnavailable)
	}
	p := s.vnc
	if p.want && p.key == key && p.cur != nil && p.cur.key == key {
		s.mu.Unlock()
		return s.vncAddr(), nil
	}
	p.want = true
	p.key = key
	p.next = time.Time{}
	p.restarting = false
	s.vncOpts = o
	attempts := p.attempts
	s.mu.Unlock()
	s.kick()

	for {
		s.mu.Lock()
		changed := s.changed
		switch {
		case !p.want || p.key != key:
			s.mu.Unlock()
			return "", fmt.Errorf("display: start vnc: superseded by another request: %w", desktop.ErrConflict)
		case p.cur != nil && p.cur.key == key:
			s.mu.Unlock()
			return s.vncAddr(), nil
		case p.attempts > attempts && p.attemptKey == key && p.attemptErr != nil:
			// The first try for this request failed: do not keep retrying
			// in the background for a caller that got an error.
			err := p.attemptErr
			p.want = false
			s.mu.Unlock()
			return "", fmt.Errorf("display: start vnc: %w", err)
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-s.quit:
			return "", fmt.Errorf("display: start vnc: desktop closed: %w", desktop.ErrUnavailable)
		case <-ctx.Done():
			return "", fmt.Errorf("display: start vnc: %w", ctx.Err())
		}
	}
}

// StopVNC stops x11vnc and returns once it has exited.
func (s *Supervisor) StopVNC(ctx context.Context) error {
	s.mu.Lock()
	p := s.vnc
	p.want = false
	s.mu.Unlock()
	s.kick()
	for {
		s.mu.Lock()
		changed, stopped := s.changed, p.cur == nil
		s.mu.Unlock()
		if stopped {
			return nil
		}
		select {
		case <-changed:
		case <-s.quit:
			return nil // Close stops it
		case <-ctx.Done():
			return fmt.Errorf("display: stop vnc: %w", ctx.Err())
		}
	}
}

// launchVNC starts x11vnc with the options last asked for and waits for its
// banner.
func (s *Supervisor) launchVNC(ctx context.Context) (*proc, error) {
	s.mu.Lock()
	o, key := s.vncOpts, s.vnc.key
	s.mu.Unlock()
	addr := s.vncAddr()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("display: start x11vnc: %s is already in use: %w", addr, desktop.ErrConflict)
	}
	cmd := command("x11vnc", s.Env(), s.home, vncArgs(s.DisplayName(), s.cfg.VNCPort, o)...)
	p, err := s.startProc(partVNC, key, cmd)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, vncReadyTimeout)
	defer cancel()
	if err := waitRFB(ctx, addr, p); err != nil {
		stopProc(context.WithoutCancel(ctx), p, time.Second)
		return nil, fmt.Errorf("display: start x11vnc: %w", err)
	}
	return p, nil
}

// waitRFB polls addr until it greets with an RFB banner, p exits or ctx
// ends.
func waitRFB(ctx context.Context, addr string, p *proc) error {
	var last error
	for {
		if last = rfbBanner(ctx, addr); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it answered: %w", p.exitError())
		case <-ctx.Done():
			return fmt.Errorf("no RFB banner on %s: %w: %w", addr, last, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// rfbBanner connects to addr and checks that it greets with "RFB 003.00x".
func rfbBanner(ctx context.Context, addr string) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 12)
	if _, err := io.ReadFull(c, b); err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	if string(b[:8]) != "RFB 003." || b[11] != '\n' {
		return fmt.Errorf("not an RFB banner: %q", b)
	}
	return nil
}
