package x11

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

// focusWait bounds how long FocusWindow waits for a window manager to
// make the window active.
const focusWait = time.Second

// atomList interns names, sending every uncached name before reading any
// reply, so a cold cache costs one round trip.
func (c *Conn) atomList(names ...string) ([]xproto.Atom, error) {
	out := make([]xproto.Atom, len(names))
	cookies := make([]xproto.InternAtomCookie, len(names))
	sent := make([]bool, len(names))
	c.atomMu.Lock()
	for i, n := range names {
		a, ok := c.atoms[n]
		out[i] = a
		sent[i] = !ok
	}
	c.atomMu.Unlock()
	for i, n := range names {
		if sent[i] {
			cookies[i] = xproto.InternAtom(c.xc, false, uint16(len(n)), n)
		}
	}
	for i, n := range names {
		if !sent[i] {
			continue
		}
		r, err := cookies[i].Reply()
		if err != nil {
			return nil, c.wrap("intern atom "+n, err)
		}
		out[i] = r.Atom
		c.atomMu.Lock()
		c.atoms[n] = r.Atom
		c.atomMu.Unlock()
	}
	return out, nil
}

// protocolError reports whether err is an X error reply (such as BadWindow
// for a window that vanished), as opposed to a broken connection.
func protocolError(err error) bool {
	var xe xgb.Error
	return errors.As(err, &xe)
}

// wmState is what the root window says about the window manager.
type wmState struct {
	wm         bool // an EWMH window manager runs
	clientList []xproto.Window
	hasList    bool
	active     xproto.Window // _NET_ACTIVE_WINDOW
	focus      xproto.Window // the X input focus
}

// readWM reads the EWMH state of the root in one round trip, two when a
// window manager check window has to be verified.
func (c *Conn) readWM(ctx context.Context) (wmState, error) {
	var st wmState
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("x11: windows: %w", err)
	}
	a, err := c.atomList("_NET_SUPPORTING_WM_CHECK", "_NET_CLIENT_LIST", "_NET_ACTIVE_WINDOW")
	if err != nil {
		return st, err
	}
	check := xproto.GetProperty(c.xc, false, c.root, a[0], xproto.AtomWindow, 0, 1)
	list := xproto.GetProperty(c.xc, false, c.root, a[1], xproto.AtomWindow, 0, 1<<16)
	active := xproto.GetProperty(c.xc, false, c.root, a[2], xproto.AtomWindow, 0, 1)
	focus := xproto.GetInputFocus(c.xc)

	cr, err := check.Reply()
	if err != nil {
		return st, c.wrap("get wm check", err)
	}
	lr, err := list.Reply()
	if err != nil {
		return st, c.wrap("get client list", err)
	}
	ar, err := active.Reply()
	if err != nil {
		return st, c.wrap("get active window", err)
	}
	fr, err := focus.Reply()
	if err != nil {
		return st, c.wrap("get input focus", err)
	}
	st.focus = fr.Focus
	if w := windowsOf(cr); len(w) == 1 && w[0] != 0 {
		// A window manager that exited leaves the property behind; the check
		// window is alive and points to itself only while it runs.
		r, err := xproto.GetProperty(c.xc, false, w[0], a[0], xproto.AtomWindow, 0, 1).Reply()
		switch {
		case err == nil:
			own := windowsOf(r)
			st.wm = len(own) == 1 && own[0] == w[0]
		case !protocolError(err):
			return st, c.wrap("get wm check", err)
		}
	}
	if !st.wm {
		return st, nil
	}
	st.clientList, st.hasList = windowsOf(lr), lr.Type != 0
	if w := windowsOf(ar); len(w) == 1 {
		st.active = w[0]
	}
	return st, nil
}

// windowsOf decodes a WINDOW property.
func windowsOf(r *xproto.GetPropertyReply) []xproto.Window {
	if r == nil || r.Format != 32 {
		return nil
	}
	out := make([]xproto.Window, 0, len(r.Value)/4)
	for i := 0; i+4 <= len(r.Value); i += 4 {
		out = append(out, xproto.Window(xgb.Get32(r.Value[i:])))
	}
	return out
}

// Windows lists the top-level application windows: the EWMH client list
// when a window manager runs, otherwise the viewable top-level windows that
// carry WM_STATE or WM_CLASS. Windows that vanish while they are read are
// left out. All windows are queried in one pipeline.
func (c *Conn) Windows(ctx context.Context) ([]desktop.Window, error) {
	st, err := c.readWM(ctx)
	if err != nil {
		return nil, err
	}
	ids := st.clientList
	if !st.hasList {
		if ids, err = c.topLevels(ctx); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("x11: windows: %w", err)
	}
	wins, err := c.describe(ids)
	if err != nil {
		return nil, err
	}
	focused := st.active
	if !st.wm {
		if focused, err = c.topLevelOf(st.focus); err != nil {
			return nil, err
		}
	}
	for i := range wins {
		wins[i].Focused = focused != 0 && wins[i].ID == uint32(focused)
	}
	return wins, nil
}

// topLevels finds the client windows without EWMH: root children that are
// viewable, not override-redirect and carry WM_STATE or WM_CLASS, or the
// child with WM_STATE of such a window (a frame of a window manager).
func (c *Conn) topLevels(ctx context.Context) ([]xproto.Window, error) {
	a, err := c.atomList("WM_STATE")
	if err != nil {
		return nil, err
	}
	wmStateAtom := a[0]
	tree, err := xproto.QueryTree(c.xc, c.root).Reply()
	if err != nil {
		return nil, c.wrap("query tree", err)
	}
	n := len(tree.Children)
	attrs := make([]xproto.GetWindowAttributesCookie, n)
	states := make([]xproto.GetPropertyCookie, n)
	classes := make([]xproto.GetPropertyCookie, n)
	for i, w := range tree.Children {
		attrs[i] = xproto.GetWindowAttributes(c.xc, w)
		states[i] = xproto.GetProperty(c.xc, false, w, wmStateAtom, xproto.GetPropertyTypeAny, 0, 0)
		classes[i] = xproto.GetProperty(c.xc, false, w, xproto.AtomWmClass, xproto.GetPropertyTypeAny, 0, 0)
	}
	var out, frames []xproto.Window
	for i, w := range tree.Children {
		ar, err1 := attrs[i].Reply()
		sr, err2 := states[i].Reply()
		cr, err3 := classes[i].Reply()
		if err := errors.Join(err1, err2, err3); err != nil {
			if protocolError(err) {
				continue
			}
			return nil, c.wrap("read window", err)
		}
		if w == c.win || ar.MapState != xproto.MapStateViewable || ar.OverrideRedirect ||
			ar.Class == xproto.WindowClassInputOnly {
			continue
		}
		switch {
		case sr.Type != 0 || cr.Type != 0:
			out = append(out, w)
		default:
			frames = append(frames, w)
		}
	}
	if len(frames) == 0 {
		return out, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("x11: windows: %w", err)
	}
	trees := make([]xproto.QueryTreeCookie, len(frames))
	for i, f := range frames {
		trees[i] = xproto.QueryTree(c.xc, f)
	}
	var kids []xproto.Window
	for i := range frames {
		t, err := trees[i].Reply()
		if err != nil {
			if protocolError(err) {
				continue
			}
			return nil, c.wrap("query tree", err)
		}
		kids = append(kids, t.Children...)
	}
	kstates := make([]xproto.GetPropertyCookie, len(kids))
	for i, k := range kids {
		kstates[i] = xproto.GetProperty(c.xc, false, k, wmStateAtom, xproto.GetPropertyTypeAny, 0, 0)
	}
	for i, k := range kids {
		r, err := kstates[i].Reply()
		if err != nil {
			if protocolError(err) {
				continue
			}
			return nil, c.wrap("read window", err)
		}
		if r.Type != 0 {
			out = append(out, k)
		}
	}
	return out, nil
}

// windowCookies are the requests in flight for one window.
type windowCookies struct {
	netName, name, class, pid xproto.GetPropertyCookie
	geom                      xproto.GetGeometryCookie
	pos                       xproto.TranslateCoordinatesCookie
}

// describe reads title, class, pid and geometry of ids: every request is
// sent before the first reply is read.
func (c *Conn) describe(ids []xproto.Window) ([]desktop.Window, error) {
	a, err := c.atomList("_NET_WM_NAME", "UTF8_STRING", "_NET_WM_PID")
	if err != nil {
		return nil, err
	}
	netName, utf8Atom, pidAtom := a[0], a[1], a[2]
	cookies := make([]windowCookies, len(ids))
	for i, w := range ids {
		cookies[i] = windowCookies{
			netName: xproto.GetProperty(c.xc, false, w, netName, utf8Atom, 0, 1024),
			name:    xproto.GetProperty(c.xc, false, w, xproto.AtomWmName, xproto.GetPropertyTypeAny, 0, 1024),
			class:   xproto.GetProperty(c.xc, false, w, xproto.AtomWmClass, xproto.AtomString, 0, 256),
			pid:     xproto.GetProperty(c.xc, false, w, pidAtom, xproto.AtomCardinal, 0, 1),
			geom:    xproto.GetGeometry(c.xc, xproto.Drawable(w)),
			pos:     xproto.TranslateCoordinates(c.xc, w, c.root, 0, 0),
		}
	}
	out := make([]desktop.Window, 0, len(ids))
	for i, w := range ids {
		ck := cookies[i]
		nn, err1 := ck.netName.Reply()
		nm, err2 := ck.name.Reply()
		cl, err3 := ck.class.Reply()
		pd, err4 := ck.pid.Reply()
		g, err5 := ck.geom.Reply()
		p, err6 := ck.pos.Reply()
		if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
			if protocolError(err) {
				continue // the window went away meanwhile
			}
			return nil, c.wrap("read window", err)
		}
		win := desktop.Window{
			ID:    uint32(w),
			Title: propText(nm, utf8Atom),
			Rect:  desktop.Rect{X: int(p.DstX), Y: int(p.DstY), Width: int(g.Width), Height: int(g.Height)},
		}
		if t := propText(nn, utf8Atom); t != "" {
			win.Title = t
		}
		if cl.Format == 8 {
			parts := strings.Split(string(cl.Value), "\x00")
			if len(parts) > 0 {
				win.Instance = latin1(parts[0])
			}
			if len(parts) > 1 {
				win.Class = latin1(parts[1])
			}
		}
		if pd.Format == 32 && len(pd.Value) >= 4 {
			win.PID = int(xgb.Get32(pd.Value))
		}
		out = append(out, win)
	}
	return out, nil
}

// propText decodes a text property: UTF8_STRING as is, STRING as Latin-1,
// other encodings as UTF-8 when they are valid UTF-8, else as Latin-1.
func propText(r *xproto.GetPropertyReply, utf8Atom xproto.Atom) string {
	if r == nil || r.Format != 8 || len(r.Value) == 0 {
		return ""
	}
	s := strings.TrimRight(string(r.Value), "\x00")
	if r.Type == utf8Atom || (r.Type != xproto.AtomString && utf8.ValidString(s)) {
		return s
	}
	return latin1(s)
}

// latin1 converts ISO 8859-1 bytes to UTF-8.
func latin1(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

// topLevelOf returns the child of the root that contains w, or 0 for no
// window (None, PointerRoot, the root itself).
func (c *Conn) topLevelOf(w xproto.Window) (xproto.Window, error) {
	for w > xproto.InputFocusPointerRoot && w != c.root {
		t, err := xproto.QueryTree(c.xc, w).Reply()
		if err != nil {
			if protocolError(err) {
				return 0, nil
			}
			return 0, c.wrap("query tree", err)
		}
		if t.Parent == c.root || t.Parent == 0 {
			return w, nil
		}
		w = t.Parent
	}
	return 0, nil
}

// ActiveWindow is the id of the focused window, or 0: _NET_ACTIVE_WINDOW
// when a window manager runs, else the top-level window holding the input
// focus.
func (c *Conn) ActiveWindow(ctx context.Context) (uint32, error) {
	st, err := c.readWM(ctx)
	if err != nil {
		return 0, err
	}
	if st.wm {
		return uint32(st.active), nil
	}
	w, err := c.topLevelOf(st.focus)
	return uint32(w), err
}

// FocusWindow raises and focuses window id. With a window manager it asks
// it (_NET_ACTIVE_WINDOW, as a pager would) and waits up to focusWait for
// the window to become active; a window manager may still refuse, or
// activate a related window such as a modal dialog, which is not an error.
// Without one it raises the window and sets the input focus itself. An
// unknown id is ErrNotFound.
func (c *Conn) FocusWindow(ctx context.Context, id uint32) error {
	if id == 0 {
		return fmt.Errorf("x11: focus window: no window id: %w", desktop.ErrInvalid)
	}
	w := xproto.Window(id)
	attrs := xproto.GetWindowAttributes(c.xc, w)
	st, err := c.readWM(ctx)
	if err != nil {
		return err
	}
	ar, err := attrs.Reply()
	if err != nil {
		if protocolError(err) {
			return fmt.Errorf("x11: focus window: no window %#x: %w", id, desktop.ErrNotFound)
		}
		return c.wrap("focus window", err)
	}
	if st.wm {
		return c.activate(ctx, w, st.active)
	}
	if ar.MapState != xproto.MapStateViewable {
		xproto.MapWindow(c.xc, w)
	}
	xproto.ConfigureWindow(c.xc, w, xproto.ConfigWindowStackMode, []uint32{xproto.StackModeAbove})
	if err := xproto.SetInputFocusChecked(c.xc, xproto.InputFocusParent, w, xproto.TimeCurrentTime).Check(); err != nil {
		if protocolError(err) {
			return fmt.Errorf("x11: focus window %#x: %v: %w", id, err, desktop.ErrConflict)
		}
		return c.wrap("focus window", err)
	}
	return nil
}

// activate sends the EWMH activation request and waits until the window
// manager reports w as active.
func (c *Conn) activate(ctx context.Context, w, current xproto.Window) error {
	a, err := c.atomList("_NET_ACTIVE_WINDOW")
	if err != nil {
		return err
	}
	ts, err := c.serverTime(ctx)
	if err != nil {
		return err
	}
	ev := xproto.ClientMessageEvent{
		Format: 32,
		Window: w,
		Type:   a[0],
		// Source indication 2: a pager, which window managers obey.
		Data: xproto.ClientMessageDataUnionData32New([]uint32{2, uint32(ts), uint32(current), 0, 0}),
	}
	err = xproto.SendEventChecked(c.xc, false, c.root,
		xproto.EventMaskSubstructureRedirect|xproto.EventMaskSubstructureNotify, string(ev.Bytes())).Check()
	if err != nil {
		return c.wrap("focus window", err)
	}
	deadline := time.Now().Add(focusWait)
	for {
		r, err := xproto.GetProperty(c.xc, false, c.root, a[0], xproto.AtomWindow, 0, 1).Reply()
		if err != nil {
			return c.wrap("focus window", err)
		}
		if got := windowsOf(r); len(got) == 1 && got[0] == w {
			return nil
		}
		if time.Now().After(deadline) {
			// The window manager may refuse; the request stands.
			return nil
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("x11: focus window: %w", ctx.Err())
		case <-c.done:
			return c.Err()
		}
	}
}
