package x11

import (
	"context"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Typing a character the keyboard layout lacks maps it onto a spare keycode
// (one the layout leaves empty) with ChangeKeyboardMapping. Such mappings
// stay in a small LRU cache so repeated characters reuse their keycode.
const (
	// maxSpares is the most spare keycodes one connection uses.
	maxSpares = 32
	// spareReserve is how many empty keycodes are left to other programs
	// (xdotool uses one for the same trick).
	spareReserve = 2
	// remapSettle is how long a keycode that was just typed stays untouched
	// before it is mapped to another character: clients look up the keysym
	// of a key event when they process it, with the mapping of that moment,
	// so a client that lags further behind may read a recycled keycode as
	// its new character. Only text with more distinct characters outside the
	// layout than there are spare keycodes recycles; pasting avoids it.
	remapSettle = 100 * time.Millisecond
)

// keymap is the server's keyboard mapping as far as typing needs it.
type keymap struct {
	min    xproto.Keycode
	per    int             // keysyms per keycode
	syms   []xproto.Keysym // per keysyms for each keycode from min
	lookup map[desktop.Keysym]keyRef
	shift  xproto.Keycode // 0: no shift key
	spares []*spareKey
	// flushed is when the server last confirmed every event sent before it.
	flushed time.Time
}

// keyRef says how to type one keysym.
type keyRef struct {
	code  xproto.Keycode
	shift bool      // at level 1: hold shift
	spare *spareKey // nil for a key of the layout
}

// spareKey is a keycode the layout leaves empty, mapped by us on demand.
type spareKey struct {
	code xproto.Keycode
	ks   desktop.Keysym // 0: not mapped
	used time.Time      // when an event for it was last sent
}

const (
	keysymShiftL = 0xffe1
	keysymVoid   = 0xffffff
)

// loadKeymap reads the keyboard and modifier mappings. Callers hold in.mu.
func (c *Conn) loadKeymap() error {
	in := c.in
	in.mapMu.Lock()
	in.mapDirty = false
	in.mapMu.Unlock()

	minKC, maxKC := c.setup.MinKeycode, c.setup.MaxKeycode
	kmc := xproto.GetKeyboardMapping(c.xc, minKC, byte(maxKC-minKC+1))
	mmc := xproto.GetModifierMapping(c.xc)
	km, err := kmc.Reply()
	if err != nil {
		return c.wrap("get keyboard mapping", err)
	}
	mm, err := mmc.Reply()
	if err != nil {
		return c.wrap("get modifier mapping", err)
	}

	kb := &in.kb
	kb.min, kb.per, kb.syms = minKC, int(km.KeysymsPerKeycode), km.Keysyms
	n := 0
	if kb.per > 0 {
		n = len(kb.syms) / kb.per
	}
	kb.shift = 0
	if per := int(mm.KeycodesPerModifier); per > 0 && len(mm.Keycodes) >= per {
		// Row 0 of the modifier map is Shift. Prefer the key that says Shift_L.
		for _, kc := range mm.Keycodes[:per] {
			if kc == 0 {
				continue
			}
			if kb.shift == 0 || kb.level(int(kc-minKC), 0) == keysymShiftL {
				kb.shift = kc
			}
		}
	}

	kb.lookup = make(map[desktop.Keysym]keyRef, 2*n)
	levels := 2
	if kb.shift == 0 {
		levels = 1
	}
	for level := 0; level < levels; level++ {
		for i := 0; i < n; i++ {
			ks := desktop.Keysym(kb.level(i, level))
			if ks == 0 || ks == keysymVoid {
				continue
			}
			ref := keyRef{code: minKC + xproto.Keycode(i), shift: level == 1}
			if _, ok := kb.lookup[ks]; !ok {
				kb.lookup[ks] = ref
			}
			// A legacy keysym (EuroSign) also types its Unicode keysym.
			if ks > 0xff && ks < 0xfe00 {
				if r := desktop.KeysymRune(ks); r >= 0 {
					if u := desktop.RuneKeysym(r); u != ks {
						if _, ok := kb.lookup[u]; !ok {
							kb.lookup[u] = ref
						}
					}
				}
			}
		}
	}
	kb.loadSpares(n, in.keys)
	return nil
}

// level is the keysym of keycode min+i at level 0 or 1 of the first group,
// with the core protocol's rule that a lone letter stands for its lower and
// upper case.
func (kb *keymap) level(i, level int) xproto.Keysym {
	if i < 0 || kb.per == 0 || (i+1)*kb.per > len(kb.syms) {
		return 0
	}
	row := kb.syms[i*kb.per : (i+1)*kb.per]
	if len(row) >= 2 && row[1] != 0 {
		return row[level]
	}
	if lo, up, ok := caseKeysyms(desktop.Keysym(row[0])); ok {
		if level == 0 {
			return xproto.Keysym(lo)
		}
		return xproto.Keysym(up)
	}
	if level == 0 {
		return row[0]
	}
	return 0
}

// caseKeysyms returns the lower and upper case keysyms of a letter.
func caseKeysyms(ks desktop.Keysym) (lo, up desktop.Keysym, ok bool) {
	if ks == 0 || (ks > 0xff && ks < 0x1000100) {
		return 0, 0, false
	}
	r := desktop.KeysymRune(ks)
	if r < 0 || !unicode.IsLetter(r) {
		return 0, 0, false
	}
	l, u := unicode.ToLower(r), unicode.ToUpper(r)
	if l == u {
		return 0, 0, false
	}
	return desktop.RuneKeysym(l), desktop.RuneKeysym(u), true
}

// empty reports whether keycode min+i has no keysym at all.
func (kb *keymap) empty(i int) bool {
	for _, ks := range kb.syms[i*kb.per : (i+1)*kb.per] {
		if ks != 0 {
			return false
		}
	}
	return true
}

// holds reports whether keycode min+i carries only ks, at levels 0 and 1
// at least (the server may copy it to the second group).
func (kb *keymap) holds(i int, ks desktop.Keysym) bool {
	row := kb.syms[i*kb.per : (i+1)*kb.per]
	for j, s := range row {
		if (j < 2 || s != 0) && desktop.Keysym(s) != ks {
			return false
		}
	}
	return true
}

// loadSpares keeps the spare keycodes that still carry our mapping and
// adds empty ones, highest first, up to the limit.
func (kb *keymap) loadSpares(n int, held map[xproto.Keycode]int) {
	var keep []*spareKey
	mine := map[xproto.Keycode]bool{}
	for _, s := range kb.spares {
		i := int(s.code - kb.min)
		if i >= n {
			continue
		}
		if s.ks != 0 && kb.holds(i, s.ks) {
			keep, mine[s.code] = append(keep, s), true
		} else if s.ks == 0 && kb.empty(i) {
			keep, mine[s.code] = append(keep, s), true
		}
	}
	var free []xproto.Keycode
	for i := n - 1; i >= 0; i-- {
		kc := kb.min + xproto.Keycode(i)
		if kb.empty(i) && !mine[kc] && held[kc] == 0 {
			free = append(free, kc)
		}
	}
	total := len(keep) + len(free)
	limit := min(maxSpares, total)
	if total > 2*spareReserve {
		limit = min(maxSpares, total-spareReserve)
	}
	for _, kc := range free {
		if len(keep) >= limit {
			break
		}
		keep = append(keep, &spareKey{code: kc})
	}
	kb.spares = keep
	// Our own mappings are not layout keys: they may be recycled.
	for ks, ref := range kb.lookup {
		if mine[ref.code] {
			delete(kb.lookup, ks)
		}
	}
}

// onMappingNotify marks the keymap stale unless the notice is the echo of
// our own remapping of a spare keycode.
func (c *Conn) onMappingNotify(e xproto.MappingNotifyEvent) {
	in := c.in
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	switch e.Request {
	case xproto.MappingPointer:
		return
	case xproto.MappingKeyboard:
		if e.Count == 1 && in.ownNotify[e.FirstKeycode] > 0 {
			if in.ownNotify[e.FirstKeycode]--; in.ownNotify[e.FirstKeycode] == 0 {
				delete(in.ownNotify, e.FirstKeycode)
			}
			return
		}
	}
	in.mapDirty = true
}

// ensureKeymap reloads the keymap when it changed. Callers hold in.mu.
func (c *Conn) ensureKeymap() error {
	c.in.mapMu.Lock()
	dirty := c.in.mapDirty
	c.in.mapMu.Unlock()
	if !dirty {
		return nil
	}
	return c.loadKeymap()
}

// resolve finds how to type ks. With mayMap it maps a spare keycode when the
// layout lacks ks; busy lists keycodes that must not be recycled meanwhile.
// The zero keyRef means "not found" (only without mayMap). Callers hold
// in.mu.
func (c *Conn) resolve(ctx context.Context, ks desktop.Keysym, mayMap bool, busy []xproto.Keycode) (keyRef, error) {
	kb := &c.in.kb
	if ref, ok := kb.lookup[ks]; ok {
		return ref, nil
	}
	for _, s := range kb.spares {
		if s.ks == ks {
			return keyRef{code: s.code, spare: s}, nil
		}
	}
	if !mayMap {
		return keyRef{}, nil
	}
	if !validKeysym(ks) {
		return keyRef{}, fmt.Errorf("keysym %#x: %w", uint32(ks), desktop.ErrInvalid)
	}
	s, err := c.takeSpare(ctx, busy)
	if err != nil {
		return keyRef{}, err
	}
	c.in.mapMu.Lock()
	c.in.ownNotify[s.code]++
	c.in.mapMu.Unlock()
	xproto.ChangeKeyboardMapping(c.xc, 1, s.code, 2, []xproto.Keysym{xproto.Keysym(ks), xproto.Keysym(ks)})
	i := int(s.code - kb.min)
	row := kb.syms[i*kb.per : (i+1)*kb.per]
	for j := range row {
		row[j] = 0
		if j < 2 {
			row[j] = xproto.Keysym(ks)
		}
	}
	s.ks = ks
	return keyRef{code: s.code, spare: s}, nil
}

// takeSpare picks a free spare keycode, or recycles the least recently used
// one that is not held down. A keycode typed moments ago is recycled only
// after the server has delivered its events and clients had remapSettle to
// read them.
func (c *Conn) takeSpare(ctx context.Context, busy []xproto.Keycode) (*spareKey, error) {
	kb := &c.in.kb
	var pick *spareKey
	for _, s := range kb.spares {
		if c.in.keys[s.code] > 0 || slices.Contains(busy, s.code) {
			continue
		}
		if s.ks == 0 {
			return s, nil
		}
		if pick == nil || s.used.Before(pick.used) {
			pick = s
		}
	}
	if pick == nil {
		return nil, fmt.Errorf("no spare keycode to map a character the keyboard layout lacks (%d in use): %w",
			len(kb.spares), desktop.ErrUnavailable)
	}
	if !pick.used.Before(kb.flushed) {
		if err := c.finish("flush key events"); err != nil {
			return nil, err
		}
		kb.flushed = time.Now()
	}
	if wait := c.in.settle - time.Since(kb.flushed); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, c.Err()
		}
	}
	pick.ks = 0
	return pick, nil
}

// restoreSpares gives the spare keycodes back their empty mapping. Callers
// hold in.mu.
func (c *Conn) restoreSpares() {
	for _, s := range c.in.kb.spares {
		if s.ks == 0 {
			continue
		}
		xproto.ChangeKeyboardMapping(c.xc, 1, s.code, 2, []xproto.Keysym{0, 0})
		s.ks = 0
	}
}

// validKeysym reports whether ks is a keysym value X can carry.
func validKeysym(ks desktop.Keysym) bool {
	return ks != 0 && ks != keysymVoid && ks&0xe0000000 == 0
}

// keycodes resolves keys to the keycodes to press, in order: a keysym at
// level 1 brings the shift key before it, and no keycode appears twice.
// Callers hold in.mu.
func (c *Conn) keycodes(ctx context.Context, op string, keys []desktop.Keysym, mayMap bool) ([]xproto.Keycode, error) {
	var codes []xproto.Keycode
	for _, ks := range keys {
		ref, err := c.resolve(ctx, ks, mayMap, codes)
		if err != nil {
			return nil, fmt.Errorf("x11: %s: %w", op, err)
		}
		if ref.code == 0 {
			continue
		}
		if ref.shift && !slices.Contains(codes, c.in.kb.shift) {
			codes = append(codes, c.in.kb.shift)
		}
		if !slices.Contains(codes, ref.code) {
			codes = append(codes, ref.code)
		}
		if ref.spare != nil {
			ref.spare.used = time.Now()
		}
	}
	return codes, nil
}

// checkKeys rejects an empty or invalid key list.
func checkKeys(op string, keys []desktop.Keysym) error {
	if len(keys) == 0 {
		return fmt.Errorf("x11: %s: no keys: %w", op, desktop.ErrInvalid)
	}
	for _, ks := range keys {
		if !validKeysym(ks) {
			return fmt.Errorf("x11: %s: keysym %#x: %w", op, uint32(ks), desktop.ErrInvalid)
		}
	}
	return nil
}

// KeyCombo presses keys in order and releases them in reverse.
func (c *Conn) KeyCombo(ctx context.Context, keys []desktop.Keysym) error {
	if err := checkKeys("key combo", keys); err != nil {
		return err
	}
	if err := c.checkInput(ctx, "key combo"); err != nil {
		return err
	}
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	if err := c.ensureKeymap(); err != nil {
		return err
	}
	codes, err := c.keycodes(ctx, "key combo", keys, true)
	if err != nil {
		return err
	}
	for _, kc := range codes {
		c.fakeKey(xproto.KeyPress, kc)
	}
	for _, kc := range slices.Backward(codes) {
		c.fakeKey(xproto.KeyRelease, kc)
	}
	return c.finish("key combo")
}

// KeyDown presses keys in order and leaves them down. Close releases keys
// still down.
func (c *Conn) KeyDown(ctx context.Context, keys []desktop.Keysym) error {
	if err := checkKeys("key down", keys); err != nil {
		return err
	}
	if err := c.checkInput(ctx, "key down"); err != nil {
		return err
	}
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	if err := c.ensureKeymap(); err != nil {
		return err
	}
	codes, err := c.keycodes(ctx, "key down", keys, true)
	if err != nil {
		return err
	}
	for _, kc := range codes {
		c.fakeKey(xproto.KeyPress, kc)
		c.in.keys[kc]++
	}
	return c.finish("key down")
}

// KeyUp releases keys in reverse order. Releasing a key that is not down
// does nothing.
func (c *Conn) KeyUp(ctx context.Context, keys []desktop.Keysym) error {
	if err := checkKeys("key up", keys); err != nil {
		return err
	}
	if err := c.checkInput(ctx, "key up"); err != nil {
		return err
	}
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	return c.keyUp(ctx, keys)
}

// keyUp releases keys. Callers hold in.mu.
func (c *Conn) keyUp(ctx context.Context, keys []desktop.Keysym) error {
	if err := c.ensureKeymap(); err != nil {
		return err
	}
	codes, err := c.keycodes(ctx, "key up", keys, false)
	if err != nil {
		return err
	}
	for _, kc := range slices.Backward(codes) {
		c.fakeKey(xproto.KeyRelease, kc)
		delete(c.in.keys, kc)
	}
	return c.finish("key up")
}

// HoldKeys presses keys, waits d, and releases them. The keys are released
// even when ctx ends first; other actions may run while they are held.
func (c *Conn) HoldKeys(ctx context.Context, keys []desktop.Keysym, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("x11: hold keys: negative duration %v: %w", d, desktop.ErrInvalid)
	}
	if err := c.KeyDown(ctx, keys); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	var waitErr error
	select {
	case <-t.C:
	case <-ctx.Done():
		waitErr = fmt.Errorf("x11: hold keys: %w", ctx.Err())
	case <-c.done:
		return c.Err()
	}
	c.in.mu.Lock()
	err := c.keyUp(context.WithoutCancel(ctx), keys)
	c.in.mu.Unlock()
	if waitErr != nil {
		return waitErr
	}
	return err
}

// textKeysyms turns text into the keysyms that type it: "\r\n" and "\n"
// type Return, "\t" Tab. Other control characters are refused.
func textKeysyms(text string) ([]desktop.Keysym, error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("x11: type: text is not valid UTF-8: %w", desktop.ErrInvalid)
	}
	out := make([]desktop.Keysym, 0, len(text))
	prevCR := false
	for i, r := range text {
		if r == '\n' && prevCR {
			prevCR = false
			continue
		}
		prevCR = r == '\r'
		switch {
		case r == '\n' || r == '\r' || r == '\t' || r == '\b' || r == 0x1b:
		case unicode.IsControl(r):
			return nil, fmt.Errorf("x11: type: character %U at byte %d cannot be typed: %w", r, i, desktop.ErrInvalid)
		}
		out = append(out, desktop.RuneKeysym(r))
	}
	return out, nil
}

// TypeText types text as key strokes, as fast as the server takes them:
// all key events go out without waiting, then one round trip. "\n" and
// "\r\n" type Return, "\t" Tab; other control characters are refused.
// Characters the keyboard layout lacks are mapped onto spare keycodes,
// which are recycled (after remapSettle) when one text needs more of them
// than there are.
func (c *Conn) TypeText(ctx context.Context, text string) error {
	syms, err := textKeysyms(text)
	if err != nil {
		return err
	}
	if err := c.checkInput(ctx, "type"); err != nil {
		return err
	}
	if len(syms) == 0 {
		return nil
	}
	in := c.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := c.ensureKeymap(); err != nil {
		return err
	}
	kb := &in.kb
	for i, ks := range syms {
		if i%64 == 63 && ctx.Err() != nil {
			err = fmt.Errorf("x11: type: stopped after %d of %d characters: %w", i, len(syms), ctx.Err())
			break
		}
		var ref keyRef
		ref, err = c.resolve(ctx, ks, true, nil)
		if err != nil {
			err = fmt.Errorf("x11: type: character %d (keysym %#x): %w", i, uint32(ks), err)
			break
		}
		if ref.shift {
			c.fakeKey(xproto.KeyPress, kb.shift)
		}
		c.fakeKey(xproto.KeyPress, ref.code)
		c.fakeKey(xproto.KeyRelease, ref.code)
		if ref.shift {
			c.fakeKey(xproto.KeyRelease, kb.shift)
		}
		if ref.spare != nil {
			ref.spare.used = time.Now()
		}
	}
	if ferr := c.finish("type"); err == nil {
		err = ferr
	}
	kb.flushed = time.Now()
	return err
}
