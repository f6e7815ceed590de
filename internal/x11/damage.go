package x11

import (
	"context"
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/damage"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

// rowSet is a set of screen rows, one bit per row.
type rowSet struct {
	bits []uint64
	n    int
}

// reset sizes s for n rows and clears it.
func (s *rowSet) reset(n int) {
	w := (n + 63) / 64
	if cap(s.bits) < w {
		s.bits = make([]uint64, w)
	}
	s.bits = s.bits[:w]
	clear(s.bits)
	s.n = n
}

// addRange adds rows [y0, y1), clipped to the set's size.
func (s *rowSet) addRange(y0, y1 int) {
	y0, y1 = max(y0, 0), min(y1, s.n)
	if y0 >= y1 {
		return
	}
	w0, w1 := y0/64, (y1-1)/64
	m0 := ^uint64(0) << (y0 % 64)
	m1 := ^uint64(0) >> (63 - (y1-1)%64)
	if w0 == w1 {
		s.bits[w0] |= m0 & m1
		return
	}
	s.bits[w0] |= m0
	for i := w0 + 1; i < w1; i++ {
		s.bits[i] = ^uint64(0)
	}
	s.bits[w1] |= m1
}

// addAll adds every row.
func (s *rowSet) addAll() { s.addRange(0, s.n) }

// any reports whether some row in [y0, y1) is in the set.
func (s *rowSet) any(y0, y1 int) bool {
	y0, y1 = max(y0, 0), min(y1, s.n)
	if y0 >= y1 {
		return false
	}
	w0, w1 := y0/64, (y1-1)/64
	m0 := ^uint64(0) << (y0 % 64)
	m1 := ^uint64(0) >> (63 - (y1-1)%64)
	if w0 == w1 {
		return s.bits[w0]&m0&m1 != 0
	}
	if s.bits[w0]&m0 != 0 || s.bits[w1]&m1 != 0 {
		return true
	}
	for i := w0 + 1; i < w1; i++ {
		if s.bits[i] != 0 {
			return true
		}
	}
	return false
}

// bounds returns the first row in the set and one past the last.
func (s *rowSet) bounds() (y0, y1 int, ok bool) {
	first := -1
	for i, w := range s.bits {
		if w != 0 {
			first = i*64 + bits.TrailingZeros64(w)
			break
		}
	}
	if first < 0 {
		return 0, 0, false
	}
	for i := len(s.bits) - 1; ; i-- {
		if w := s.bits[i]; w != 0 {
			return first, i*64 + 64 - bits.LeadingZeros64(w), true
		}
	}
}

// count is the number of rows in the set.
func (s *rowSet) count() int {
	n := 0
	for _, w := range s.bits {
		n += bits.OnesCount64(w)
	}
	return n
}

// or adds every row of o; both sets have the same size.
func (s *rowSet) or(o *rowSet) {
	for i, w := range o.bits {
		s.bits[i] |= w
	}
}

// clearAll empties the set.
func (s *rowSet) clearAll() { clear(s.bits) }

// damageTracker turns the server's damage reports on the root window into
// dirty screen rows and the time of the latest drawing. The event loop
// writes it; captures and Settle read it.
type damageTracker struct {
	id damage.Damage // 0 when the server has no DAMAGE extension

	mu    sync.Mutex
	rows  rowSet    // rows drawn since the last take
	last  time.Time // when the latest report was handled
	count uint64    // reports handled so far
}

// initDamage creates one Damage object on the root window. RawRectangles
// reports every drawing as an event without the damage ever needing to be
// subtracted, so no request is needed per event. The damage of a window
// covers its inferiors too: drawing inside any child window is reported on
// the root. Without the extension every capture counts as changed. XFIXES
// is set up already.
func (c *Conn) initDamage(d *damageTracker) error {
	if err := c.initExt("DAMAGE", damage.Init); err != nil {
		c.log.Debug("x11: no DAMAGE extension; every capture counts as changed", "error", err.Error())
		return nil
	}
	if _, err := damage.QueryVersion(c.xc, 1, 1).Reply(); err != nil {
		return c.wrap("damage query version", err)
	}
	id, err := damage.NewDamageId(c.xc)
	if err != nil {
		return c.wrap("allocate damage id", err)
	}
	// Register before creating, so no report is missed.
	d.mu.Lock()
	d.id = id
	d.mu.Unlock()
	c.handle(d.onEvent)
	err = damage.CreateChecked(c.xc, id, xproto.Drawable(c.root), damage.ReportLevelRawRectangles).Check()
	if err != nil {
		d.mu.Lock()
		d.id = 0
		d.mu.Unlock()
		if c.Err() != nil {
			return c.wrap("create damage on the root window", err)
		}
		c.log.Debug("x11: cannot track damage; every capture counts as changed", "error", err.Error())
	}
	return nil
}

// closeDamage destroys the Damage object.
func (c *Conn) closeDamage(d *damageTracker) {
	d.mu.Lock()
	id := d.id
	d.id = 0
	d.mu.Unlock()
	if id != 0 {
		damage.Destroy(c.xc, id)
	}
}

// onEvent runs on the event loop for every event.
func (d *damageTracker) onEvent(ev xgb.Event) {
	n, ok := ev.(damage.NotifyEvent)
	if !ok {
		return
	}
	now := time.Now()
	d.mu.Lock()
	if n.Damage == d.id && d.id != 0 {
		y := int(n.Area.Y)
		d.rows.addRange(y, y+int(n.Area.Height))
		d.last = now
		d.count++
	}
	d.mu.Unlock()
}

// available reports whether damage is tracked.
func (d *damageTracker) available() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.id != 0
}

// take moves the accumulated dirty rows into dst (which must have the
// tracker's size) and clears them. Without damage tracking every row is
// dirty.
func (d *damageTracker) take(dst *rowSet) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.id == 0 {
		dst.addAll()
		return
	}
	dst.or(&d.rows)
	d.rows.clearAll()
}

// resize sizes the tracker for a screen of the given height; every row
// becomes dirty.
func (d *damageTracker) resize(height int) {
	d.mu.Lock()
	d.rows.reset(height)
	d.rows.addAll()
	d.mu.Unlock()
}

// latest returns the time of the latest report and how many were handled.
func (d *damageTracker) latest() (time.Time, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last, d.count
}

// settle waits until nothing was drawn for quiet, counted from the later of
// the call and the latest drawing, or until timeout passes.
//
// It needs no wake-up from the damage handler: a report can only move the
// moment the screen goes quiet later, never earlier. So it sleeps on a timer
// until the earliest moment quiet can be reached, then calls Sync so that
// every report of drawing done before that moment has been handled, and
// looks again. Under constant drawing it wakes once per quiet period, not
// once per report.
func (c *Conn) settle(ctx context.Context, d *damageTracker, quiet, timeout time.Duration) (bool, error) {
	if quiet < 0 || timeout < 0 {
		return false, fmt.Errorf("x11: settle: negative duration (quiet %v, timeout %v): %w", quiet, timeout, desktop.ErrInvalid)
	}
	start := time.Now()
	deadline := start.Add(timeout)
	if err := c.Sync(ctx); err != nil {
		return false, err
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		last, n := d.latest()
		from := start
		if last.After(from) {
			from = last
		}
		quietAt := from.Add(quiet)
		now := time.Now()
		if !now.Before(quietAt) {
			// Reports of drawing done before now may still be on their way:
			// let them arrive, then decide.
			if err := c.Sync(ctx); err != nil {
				return false, err
			}
			if _, n2 := d.latest(); n2 == n {
				return true, nil
			}
			continue
		}
		if !now.Before(deadline) {
			return false, nil
		}
		wake := quietAt
		if deadline.Before(wake) {
			wake = deadline
		}
		timer.Reset(wake.Sub(now))
		select {
		case <-timer.C:
		case <-ctx.Done():
			return false, fmt.Errorf("x11: settle: %w", ctx.Err())
		case <-c.done:
			return false, c.Err()
		}
	}
}
