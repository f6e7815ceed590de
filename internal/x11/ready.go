package x11

import (
	"context"
	"strings"

	"github.com/jezek/xgb/xproto"
)

// WindowManager returns the name of the running EWMH window manager
// (_NET_SUPPORTING_WM_CHECK), or "" when none runs.
func (c *Conn) WindowManager(ctx context.Context) (string, error) {
	check, err := c.atom("_NET_SUPPORTING_WM_CHECK")
	if err != nil {
		return "", err
	}
	r, err := xproto.GetProperty(c.xc, false, c.root, check, xproto.AtomWindow, 0, 1).Reply()
	if err != nil {
		return "", c.wrap("read _NET_SUPPORTING_WM_CHECK", err)
	}
	if r.Format != 32 || len(r.Value) < 4 {
		return "", nil
	}
	wm := xproto.Window(wire32(r.Value))
	// The check window must carry the same property pointing at itself,
	// or the manager that set it is gone.
	self, err := xproto.GetProperty(c.xc, false, wm, check, xproto.AtomWindow, 0, 1).Reply()
	if err != nil || self.Format != 32 || len(self.Value) < 4 || xproto.Window(wire32(self.Value)) != wm {
		return "", nil
	}
	name, _ := c.wmText(wm, "_NET_WM_NAME")
	if name == "" {
		name = "unknown"
	}
	return name, nil
}

// MappedClass reports whether a viewable top-level window (or the client
// window inside a window manager frame) has a WM_CLASS instance or class
// equal to name, case-insensitively. It sees docks and panels, which the
// EWMH client list leaves out.
func (c *Conn) MappedClass(ctx context.Context, name string) (bool, error) {
	tree, err := xproto.QueryTree(c.xc, c.root).Reply()
	if err != nil {
		return false, c.wrap("query tree", err)
	}
	attrs := make([]xproto.GetWindowAttributesCookie, len(tree.Children))
	for i, w := range tree.Children {
		attrs[i] = xproto.GetWindowAttributes(c.xc, w)
	}
	var viewable []xproto.Window
	for i, ck := range attrs {
		a, err := ck.Reply()
		if err == nil && a.MapState == xproto.MapStateViewable {
			viewable = append(viewable, tree.Children[i])
		}
	}
	for _, w := range viewable {
		if c.hasClass(w, name) {
			return true, nil
		}
		// A frame: look one level down for the client window.
		sub, err := xproto.QueryTree(c.xc, w).Reply()
		if err != nil {
			continue
		}
		for _, s := range sub.Children {
			if c.hasClass(s, name) {
				return true, nil
			}
		}
	}
	return false, nil
}

func (c *Conn) hasClass(w xproto.Window, name string) bool {
	r, err := xproto.GetProperty(c.xc, false, w, xproto.AtomWmClass, xproto.AtomString, 0, 64).Reply()
	if err != nil || r.Format != 8 {
		return false
	}
	for _, part := range strings.Split(string(r.Value), "\x00") {
		if part != "" && strings.EqualFold(part, name) {
			return true
		}
	}
	return false
}

// wmText reads a UTF8_STRING or STRING property as text.
func (c *Conn) wmText(w xproto.Window, prop string) (string, error) {
	a, err := c.atom(prop)
	if err != nil {
		return "", err
	}
	r, err := xproto.GetProperty(c.xc, false, w, a, xproto.GetPropertyTypeAny, 0, 1<<16).Reply()
	if err != nil {
		return "", c.wrap("read "+prop, err)
	}
	if r.Format != 8 {
		return "", nil
	}
	return string(r.Value), nil
}

func wire32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
