// Package x11 drives one X display natively: XTEST input, MIT-SHM capture,
// XDamage change tracking, RANDR screen size, EWMH windows and the
// clipboard, all over one long-lived connection that is safe for concurrent
// callers. No action spawns a process.
package x11

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Config says which display to drive.
type Config struct {
	// Display is the X display name, ":0" or "0". Required.
	Display string
	// ShmOwner, when not -1, is the uid that owns the X server process; the
	// shared-memory segment for capture is handed to it so an X server
	// running as another user than this process can attach it. Zero value:
	// the segment keeps this process's uid.
	ShmOwner int
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Validate checks c.
func (c Config) Validate() error {
	if _, err := DisplayNumber(c.Display); err != nil {
		return err
	}
	return nil
}

// DisplayNumber parses ":0", "0", ":0.0" or "unix:0" into 0.
func DisplayNumber(display string) (int, error) {
	d := display
	if i := strings.LastIndexByte(d, ':'); i >= 0 {
		d = d[i+1:]
	}
	if i := strings.IndexByte(d, '.'); i >= 0 {
		d = d[:i]
	}
	n, err := strconv.Atoi(d)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("x11: bad display %q: want a form like \":0\"", display)
	}
	return n, nil
}

// Conn is one connection to an X display. All methods are safe for
// concurrent use. Close it when done: it holds one X client slot.
type Conn struct {
	cfg    Config
	log    *slog.Logger
	xc     *xgb.Conn
	setup  *xproto.SetupInfo
	screen *xproto.ScreenInfo
	root   xproto.Window
	// win is an unmapped InputOnly window of our own: it owns selections and
	// receives the barrier messages.
	win xproto.Window

	atomMu sync.Mutex
	atoms  map[string]xproto.Atom

	// barrier state: see Sync.
	barrierSeq  atomic.Uint32
	barrierMu   sync.Mutex
	barrierWait map[uint32]chan struct{}
	barrierAtom xproto.Atom

	handlersMu sync.RWMutex
	handlers   []func(xgb.Event)

	in  *inputState   // input.go, keyboard.go
	cap *captureState // capture.go, damage.go

	done      chan struct{} // closed when the event loop ends
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error // why the connection ended
}

// Dial connects to the display in cfg, sets up the extensions and starts the
// event loop. It tries the abstract socket first (Xvfb -nolisten unix leaves
// only that), then /tmp/.X11-unix/X<n>.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n, _ := DisplayNumber(cfg.Display)
	nc, err := dialSocket(ctx, n)
	if err != nil {
		return nil, err
	}
	xc, err := xgb.NewConnNet(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("x11: connect to display :%d: %w", n, err)
	}
	c := &Conn{
		cfg:         cfg,
		log:         cfg.Logger,
		xc:          xc,
		atoms:       map[string]xproto.Atom{},
		barrierWait: map[uint32]chan struct{}{},
		done:        make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := c.init(); err != nil {
		xc.Close()
		return nil, err
	}
	go c.eventLoop()
	if err := c.initSubsystems(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dialSocket opens the X server's local socket, abstract first.
func dialSocket(ctx context.Context, n int) (net.Conn, error) {
	var d net.Dialer
	path := filepath.Join("/tmp/.X11-unix", "X"+strconv.Itoa(n))
	nc, err := d.DialContext(ctx, "unix", "@"+path)
	if err == nil {
		return nc, nil
	}
	nc, err2 := d.DialContext(ctx, "unix", path)
	if err2 == nil {
		return nc, nil
	}
	return nil, fmt.Errorf("x11: no X server on display :%d (abstract socket: %v; %s: %v): %w",
		n, err, path, err2, desktop.ErrUnavailable)
}

func (c *Conn) init() error {
	c.setup = xproto.Setup(c.xc)
	if len(c.setup.Roots) == 0 {
		return errors.New("x11: server has no screens")
	}
	c.screen = c.setup.DefaultScreen(c.xc)
	c.root = c.screen.Root

	win, err := xproto.NewWindowId(c.xc)
	if err != nil {
		return fmt.Errorf("x11: allocate window id: %w", err)
	}
	// InputOnly, unmapped, off screen: never visible, never in a window list.
	err = xproto.CreateWindowChecked(c.xc, 0, win, c.root, -10, -10, 1, 1, 0,
		xproto.WindowClassInputOnly, c.screen.RootVisual,
		xproto.CwEventMask, []uint32{xproto.EventMaskPropertyChange}).Check()
	if err != nil {
		return fmt.Errorf("x11: create helper window: %w", err)
	}
	c.win = win
	if c.barrierAtom, err = c.atom("_CUBICLE_BARRIER"); err != nil {
		return err
	}
	c.handle(c.onBarrier)
	return nil
}

// initSubsystems sets up input and capture once the event loop runs.
func (c *Conn) initSubsystems() error {
	if err := c.initInput(); err != nil {
		return err
	}
	return c.initCapture()
}

// handle registers fn to see every event the connection receives. Handlers
// run on the event loop goroutine: they must not block on X replies that
// need another event to arrive.
func (c *Conn) handle(fn func(xgb.Event)) {
	c.handlersMu.Lock()
	c.handlers = append(c.handlers, fn)
	c.handlersMu.Unlock()
}

func (c *Conn) eventLoop() {
	defer close(c.done)
	for {
		ev, xerr := c.xc.WaitForEvent()
		switch {
		case ev == nil && xerr == nil:
			c.setErr(fmt.Errorf("x11: connection to display %s closed: %w", c.cfg.Display, desktop.ErrUnavailable))
			c.releaseBarriers()
			return
		case xerr != nil:
			// Errors of unchecked requests, such as a window that vanished
			// between listing and querying it. Callers that care use checked
			// requests.
			c.log.Debug("x11 async error", "error", xerr.Error())
		default:
			c.handlersMu.RLock()
			hs := c.handlers
			c.handlersMu.RUnlock()
			for _, h := range hs {
				h(ev)
			}
		}
	}
}

// Sync waits until the X server has processed every request sent before it
// and the event loop has handled every event the server sent before that.
// Capture and settle use it to know that no damage report is still in
// flight.
func (c *Conn) Sync(ctx context.Context) error {
	seq := c.barrierSeq.Add(1)
	ch := make(chan struct{})
	c.barrierMu.Lock()
	if c.barrierWait == nil {
		c.barrierMu.Unlock()
		return c.Err()
	}
	c.barrierWait[seq] = ch
	c.barrierMu.Unlock()

	// An event sent with an empty mask goes to the client that created the
	// window: us. It comes back after everything the server sent before.
	ev := xproto.ClientMessageEvent{
		Format: 32,
		Window: c.win,
		Type:   c.barrierAtom,
		Data:   xproto.ClientMessageDataUnionData32New([]uint32{seq, 0, 0, 0, 0}),
	}
	xproto.SendEvent(c.xc, false, c.win, 0, string(ev.Bytes()))
	select {
	case <-ch:
		return c.Err()
	case <-c.done:
		return c.Err()
	case <-ctx.Done():
		c.barrierMu.Lock()
		delete(c.barrierWait, seq)
		c.barrierMu.Unlock()
		return fmt.Errorf("x11: sync: %w", ctx.Err())
	}
}

func (c *Conn) onBarrier(ev xgb.Event) {
	cm, ok := ev.(xproto.ClientMessageEvent)
	if !ok || cm.Window != c.win || cm.Type != c.barrierAtom {
		return
	}
	seq := cm.Data.Data32[0]
	c.barrierMu.Lock()
	// Barriers complete in order: release this one and any older ones.
	for s, ch := range c.barrierWait {
		if int32(seq-s) >= 0 {
			close(ch)
			delete(c.barrierWait, s)
		}
	}
	c.barrierMu.Unlock()
}

func (c *Conn) releaseBarriers() {
	c.barrierMu.Lock()
	for _, ch := range c.barrierWait {
		close(ch)
	}
	c.barrierWait = nil
	c.barrierMu.Unlock()
}

// RoundTrip waits for one reply from the server, so everything sent before
// has been processed. It is cheaper than Sync when no events matter.
func (c *Conn) RoundTrip() error {
	if _, err := xproto.GetInputFocus(c.xc).Reply(); err != nil {
		return c.wrap("round trip", err)
	}
	return nil
}

// atom interns name once and caches it.
func (c *Conn) atom(name string) (xproto.Atom, error) {
	c.atomMu.Lock()
	a, ok := c.atoms[name]
	c.atomMu.Unlock()
	if ok {
		return a, nil
	}
	r, err := xproto.InternAtom(c.xc, false, uint16(len(name)), name).Reply()
	if err != nil {
		return 0, c.wrap("intern atom "+name, err)
	}
	c.atomMu.Lock()
	c.atoms[name] = r.Atom
	c.atomMu.Unlock()
	return r.Atom, nil
}

// atomName returns the name of a, cached like atom.
func (c *Conn) atomName(a xproto.Atom) (string, error) {
	c.atomMu.Lock()
	for n, v := range c.atoms {
		if v == a {
			c.atomMu.Unlock()
			return n, nil
		}
	}
	c.atomMu.Unlock()
	r, err := xproto.GetAtomName(c.xc, a).Reply()
	if err != nil {
		return "", c.wrap("get atom name", err)
	}
	c.atomMu.Lock()
	c.atoms[r.Name] = a
	c.atomMu.Unlock()
	return r.Name, nil
}

// wrap turns an xgb error into ours: a closed connection is ErrUnavailable.
func (c *Conn) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	select {
	case <-c.done:
		return fmt.Errorf("x11: %s: %w", op, c.Err())
	default:
	}
	return fmt.Errorf("x11: %s: %v", op, err)
}

func (c *Conn) setErr(err error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
}

// Err returns why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Done is closed when the connection ends, by Close or because the X server
// went away.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Display is the display name this connection drives.
func (c *Conn) Display() string { return c.cfg.Display }

// Close releases the X resources of the connection and closes it. It is
// safe to call more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closeCapture()
		c.closeInput()
		if c.win != 0 {
			xproto.DestroyWindow(c.xc, c.win)
		}
		c.xc.Sync()
		c.setErr(fmt.Errorf("x11: connection closed: %w", desktop.ErrUnavailable))
		c.xc.Close()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
	})
	return nil
}
