package x11

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jezek/xgb/shm"
	"github.com/jezek/xgb/xfixes"
	"github.com/jezek/xgb/xproto"
	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/desktop"
)

// captureState holds the shared-memory segment, the damage tracker and the
// encoded-frame caches.
type captureState struct {
	damage damageTracker

	// mu serializes captures: it guards everything below.
	mu     sync.Mutex
	closed bool
	// xfixes is true when the server has XFIXES: the pointer can be drawn
	// in. Set once at start.
	xfixes bool
	// format is nil when the screen can be captured, else why not.
	format error
	// width and height are the screen size the buffers below are made for.
	width, height int

	// seg is the MIT-SHM segment the server writes frames into; nil until
	// the first capture, or when captures go over the socket.
	seg *shmSegment
	// noSHM makes captures use GetImage over the socket: MIT-SHM is missing,
	// attaching failed, or it was turned off.
	noSHM bool
	// frame is a copy of the screen, BGRX rows of width*4 bytes: the
	// segment's memory, or a buffer of ours when frames come over the
	// socket. nil until the first grab.
	frame []byte
	// stale holds the rows of frame that may differ from the screen: drawn
	// on since they were last read, never read, or painted over with the
	// pointer. A grab reads only the band of rows from the first stale one
	// to the last.
	stale rowSet

	taken   rowSet // scratch for rows taken from the damage tracker
	entries []*shotEntry
	useTick uint64
}

// shmSegment is a SysV shared-memory segment attached both to us and to the
// X server. It is marked for removal as soon as both have attached, so the
// kernel frees it when the last of them detaches or exits, whatever happens
// to this process.
type shmSegment struct {
	seg shm.Seg
	mem []byte
}

func (c *Conn) initCapture() error {
	cs := &captureState{}
	c.cap = cs
	cs.width, cs.height = int(c.screen.WidthInPixels), int(c.screen.HeightInPixels)
	cs.format = c.checkPixelFormat()
	cs.taken.reset(cs.height)
	cs.stale.reset(cs.height)
	cs.stale.addAll()
	cs.damage.rows.reset(cs.height)
	cs.damage.rows.addAll()
	if err := c.initExt("XFIXES", xfixes.Init); err != nil {
		c.log.Debug("x11: no XFIXES extension: no pointer in screenshots, every capture counts as changed", "error", err.Error())
		return nil
	}
	// XFIXES requests, and DAMAGE which builds on it, need the version
	// announced first.
	if _, err := xfixes.QueryVersion(c.xc, 5, 0).Reply(); err != nil {
		return c.wrap("xfixes query version", err)
	}
	cs.xfixes = true
	return c.initDamage(&cs.damage)
}

// checkPixelFormat reports whether the root window's pixels arrive as BGRX
// words: depth 24 or 32, 32 bits per pixel, least significant byte first,
// and a TrueColor visual with 8-bit channels.
func (c *Conn) checkPixelFormat() error {
	depth := c.screen.RootDepth
	bpp := 0
	for _, f := range c.setup.PixmapFormats {
		if f.Depth == depth {
			bpp = int(f.BitsPerPixel)
		}
	}
	if (depth != 24 && depth != 32) || bpp != 32 {
		return fmt.Errorf("x11: capture needs a screen of depth 24 or 32 with 32 bits per pixel, display %s has depth %d with %d: %w",
			c.cfg.Display, depth, bpp, desktop.ErrUnavailable)
	}
	if c.setup.ImageByteOrder != xproto.ImageOrderLSBFirst {
		return fmt.Errorf("x11: capture needs LSB-first images, display %s sends MSB first: %w", c.cfg.Display, desktop.ErrUnavailable)
	}
	for _, d := range c.screen.AllowedDepths {
		for _, v := range d.Visuals {
			if v.VisualId != c.screen.RootVisual {
				continue
			}
			if v.Class != xproto.VisualClassTrueColor || v.RedMask != 0xff0000 || v.GreenMask != 0xff00 || v.BlueMask != 0xff {
				return fmt.Errorf("x11: capture needs a TrueColor visual with 8-bit channels, display %s has class %d masks %#x/%#x/%#x: %w",
					c.cfg.Display, v.Class, v.RedMask, v.GreenMask, v.BlueMask, desktop.ErrUnavailable)
			}
			return nil
		}
	}
	return fmt.Errorf("x11: root visual %d not found on display %s: %w", c.screen.RootVisual, c.cfg.Display, desktop.ErrUnavailable)
}

func (c *Conn) closeCapture() {
	cs := c.cap
	if cs == nil {
		return
	}
	cs.mu.Lock()
	cs.closed = true
	c.detachSegment()
	cs.entries = nil
	cs.mu.Unlock()
	c.closeDamage(&cs.damage)
}

// Screenshot captures the screen and encodes it as opts say. Image.Data is
// shared with later calls that return the same encoding (Cached): do not
// modify it.
func (c *Conn) Screenshot(ctx context.Context, opts desktop.ScreenshotOptions) (*desktop.Image, error) {
	return c.screenshot(ctx, opts)
}

// Settle waits until nothing has been drawn for quiet, or timeout passes.
// It reports whether the screen went quiet. Without the DAMAGE extension
// nothing can be observed, and it reports true after quiet.
func (c *Conn) Settle(ctx context.Context, quiet, timeout time.Duration) (bool, error) {
	return c.settle(ctx, &c.cap.damage, quiet, timeout)
}

// Blank reports whether the whole screen is one colour (nothing painted).
func (c *Conn) Blank(ctx context.Context) (bool, error) {
	geo := xproto.GetGeometry(c.xc, xproto.Drawable(c.root))
	if err := c.Sync(ctx); err != nil {
		return false, err
	}
	g, err := geo.Reply()
	if err != nil {
		return false, c.wrap("get screen geometry", err)
	}
	cs := c.cap
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if err := c.prepare(int(g.Width), int(g.Height)); err != nil {
		return false, err
	}
	cs.collect()
	if err := c.grab(); err != nil {
		return false, err
	}
	return uniform(cs.frame, cs.width*4, cs.width, cs.height), nil
}

// uniform reports whether every pixel of the BGRX frame has the colour of
// the first, ignoring the unused byte.
func uniform(pix []byte, stride, w, h int) bool {
	if w == 0 || h == 0 {
		return true
	}
	first := [3]byte{pix[0], pix[1], pix[2]}
	for y := range h {
		row := pix[y*stride : y*stride+w*4]
		for i := 0; i < len(row); i += 4 {
			if row[i] != first[0] || row[i+1] != first[1] || row[i+2] != first[2] {
				return false
			}
		}
	}
	return true
}

// prepare makes the capture state fit a screen of w x h, dropping what was
// made for another size. cs.mu is held.
func (c *Conn) prepare(w, h int) error {
	cs := c.cap
	if cs.closed {
		return fmt.Errorf("x11: capture: connection closed: %w", desktop.ErrUnavailable)
	}
	if cs.format != nil {
		return cs.format
	}
	if w == cs.width && h == cs.height {
		return nil
	}
	c.log.Debug("x11: screen size changed", "width", w, "height", h)
	c.detachSegment()
	cs.frame = nil
	cs.width, cs.height = w, h
	cs.entries = nil
	cs.taken.reset(h)
	cs.stale.reset(h)
	cs.stale.addAll()
	cs.damage.resize(h)
	return nil
}

// collect takes the rows drawn on since the last collect from the damage
// tracker and hands them to the frame and to every screenshot shape.
// cs.mu is held.
func (cs *captureState) collect() {
	cs.taken.clearAll()
	cs.damage.take(&cs.taken)
	cs.stale.or(&cs.taken)
	for _, e := range cs.entries {
		e.pending.or(&cs.taken)
	}
}

// grab brings cs.frame up to date with the screen: it reads the band of
// rows from the first stale row to the last, straight into the segment, or
// over the socket into a buffer of ours. cs.mu is held.
func (c *Conn) grab() error {
	cs := c.cap
	w, h := cs.width, cs.height
	if cs.frame == nil {
		if !cs.noSHM {
			if err := c.attachSegment(w * h * 4); err != nil {
				c.log.Debug("x11: MIT-SHM unavailable, capturing over the socket", "error", err.Error())
				cs.noSHM = true
			}
		}
		if cs.seg != nil {
			cs.frame = cs.seg.mem[:w*h*4]
		} else {
			cs.frame = make([]byte, w*h*4)
		}
		cs.stale.addAll()
	}
	y0, y1, ok := cs.stale.bounds()
	if !ok {
		return nil
	}
	stride := w * 4
	if cs.seg != nil {
		r, err := shm.GetImage(c.xc, xproto.Drawable(c.root), 0, int16(y0), uint16(w), uint16(y1-y0),
			^uint32(0), xproto.ImageFormatZPixmap, cs.seg.seg, uint32(y0*stride)).Reply()
		if err != nil {
			return c.wrap("shm get image", err)
		}
		if r.Depth != 24 && r.Depth != 32 {
			return fmt.Errorf("x11: shm get image: depth %d: %w", r.Depth, desktop.ErrUnavailable)
		}
	} else {
		// The fallback: the reply carries the pixels, in a buffer xgb
		// allocates.
		r, err := xproto.GetImage(c.xc, xproto.ImageFormatZPixmap, xproto.Drawable(c.root), 0, int16(y0),
			uint16(w), uint16(y1-y0), ^uint32(0)).Reply()
		if err != nil {
			return c.wrap("get image", err)
		}
		n := (y1 - y0) * stride
		if len(r.Data) < n {
			return fmt.Errorf("x11: get image: got %d bytes for %dx%d: %w", len(r.Data), w, y1-y0, desktop.ErrUnavailable)
		}
		copy(cs.frame[y0*stride:], r.Data[:n])
	}
	cs.stale.clearAll()
	return nil
}

// attachSegment creates a segment of size bytes and attaches it to us and
// to the server. cs.mu is held.
func (c *Conn) attachSegment(size int) error {
	if err := c.initExt("MIT-SHM", shm.Init); err != nil {
		return fmt.Errorf("x11: no MIT-SHM extension: %w", err)
	}
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, size, unix.IPC_CREAT|0o600)
	if err != nil {
		return fmt.Errorf("x11: shmget %d bytes: %w", size, err)
	}
	// Whatever happens next, the segment goes away once nobody has it
	// attached any more.
	attached := false
	defer func() {
		if !attached {
			unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		}
	}()
	if owner := c.cfg.ShmOwner; owner > 0 && owner != os.Geteuid() {
		// An X server running as another user must be allowed to attach.
		var ds unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err != nil {
			return fmt.Errorf("x11: shmctl stat: %w", err)
		}
		ds.Perm.Uid = uint32(owner)
		if _, err := unix.SysvShmCtl(id, unix.IPC_SET, &ds); err != nil {
			return fmt.Errorf("x11: shmctl set owner %d: %w", owner, err)
		}
	}
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return fmt.Errorf("x11: shmat: %w", err)
	}
	seg, err := shm.NewSegId(c.xc)
	if err != nil {
		unix.SysvShmDetach(mem)
		return c.wrap("allocate shm segment id", err)
	}
	// The server writes the frames, so it attaches read-write. The check is
	// the round trip after which the server holds its own attachment.
	if err := shm.AttachChecked(c.xc, seg, uint32(id), false).Check(); err != nil {
		unix.SysvShmDetach(mem)
		return c.wrap("shm attach", err)
	}
	attached = true
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		shm.Detach(c.xc, seg)
		unix.SysvShmDetach(mem)
		return fmt.Errorf("x11: shmctl remove: %w", err)
	}
	c.cap.seg = &shmSegment{seg: seg, mem: mem}
	return nil
}

// detachSegment detaches the segment from the server and from us; the
// kernel then frees it. cs.mu is held.
func (c *Conn) detachSegment() {
	cs := c.cap
	if cs.seg == nil {
		return
	}
	shm.Detach(c.xc, cs.seg.seg)
	unix.SysvShmDetach(cs.seg.mem)
	cs.seg = nil
	cs.frame = nil // it pointed into the segment
}

// setSHM turns capture through MIT-SHM on or off; off, frames come over
// the socket.
func (c *Conn) setSHM(on bool) {
	cs := c.cap
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c.detachSegment()
	cs.frame = nil
	cs.noSHM = !on
}
