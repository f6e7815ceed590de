package x11

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

const (
	// MaxClipboard is the most text, in bytes, SetClipboard takes. Larger
	// text would need the INCR protocol to serve; Clipboard reads INCR
	// transfers of other owners up to maxClipboardRead.
	MaxClipboard = 255 << 10
	// maxClipboardRead bounds what Clipboard reads from another owner.
	maxClipboardRead = 64 << 20
	// clipboardTimeout is how long Clipboard waits for the owner when ctx
	// has no deadline.
	clipboardTimeout = 2 * time.Second
)

// clipState is the CLIPBOARD selection as this connection sees it.
type clipState struct {
	mu    sync.Mutex
	owned bool // we own CLIPBOARD and serve text
	text  string
	since xproto.Timestamp // when we took ownership

	// notify receives SelectionNotify events for the read in progress;
	// propNew is signalled when the read property gets a new value (INCR).
	notify  chan xproto.SelectionNotifyEvent
	propNew chan struct{}
	// timeWait are the callers of serverTime waiting for a timestamp.
	timeWait []chan xproto.Timestamp

	readMu sync.Mutex // one Clipboard read at a time: they share prop

	atomClipboard, atomTargets, atomUTF8, atomText, atomIncr, atomTimestamp, atomProp, atomTime xproto.Atom
}

func (cl *clipState) init() {
	cl.notify = make(chan xproto.SelectionNotifyEvent, 4)
	cl.propNew = make(chan struct{}, 1)
}

func (c *Conn) initClipboard() error {
	a, err := c.atomList("CLIPBOARD", "TARGETS", "UTF8_STRING", "TEXT", "INCR", "TIMESTAMP",
		"_CUBICLE_SELECTION", "_CUBICLE_TIME")
	if err != nil {
		return err
	}
	cl := &c.in.clip
	cl.atomClipboard, cl.atomTargets, cl.atomUTF8, cl.atomText, cl.atomIncr, cl.atomTimestamp, cl.atomProp, cl.atomTime =
		a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
	return nil
}

// serverTime returns a current X server timestamp: a zero-length append to
// a property of our window brings back a PropertyNotify with the time.
func (c *Conn) serverTime(ctx context.Context) (xproto.Timestamp, error) {
	cl := &c.in.clip
	ch := make(chan xproto.Timestamp, 1)
	cl.mu.Lock()
	cl.timeWait = append(cl.timeWait, ch)
	cl.mu.Unlock()
	xproto.ChangeProperty(c.xc, xproto.PropModeAppend, c.win, cl.atomTime, xproto.AtomString, 8, 0, nil)
	select {
	case ts := <-ch:
		return ts, nil
	case <-ctx.Done():
		cl.mu.Lock()
		cl.timeWait = slices.DeleteFunc(cl.timeWait, func(w chan xproto.Timestamp) bool { return w == ch })
		cl.mu.Unlock()
		return 0, fmt.Errorf("x11: server time: %w", ctx.Err())
	case <-c.done:
		return 0, c.Err()
	}
}

// onPropertyNotify hands timestamps to serverTime and new values of the
// read property to an INCR transfer.
func (c *Conn) onPropertyNotify(e xproto.PropertyNotifyEvent) {
	cl := &c.in.clip
	if e.Window != c.win {
		return
	}
	switch {
	case e.Atom == cl.atomTime:
		cl.mu.Lock()
		ws := cl.timeWait
		cl.timeWait = nil
		cl.mu.Unlock()
		for _, w := range ws {
			w <- e.Time
		}
	case e.Atom == cl.atomProp && e.State == xproto.PropertyNewValue:
		select {
		case cl.propNew <- struct{}{}:
		default:
		}
	}
}

// SetClipboard puts text on the CLIPBOARD selection and serves it until
// another client takes it. Text over MaxClipboard bytes is refused.
func (c *Conn) SetClipboard(ctx context.Context, text string) error {
	if len(text) > MaxClipboard {
		return fmt.Errorf("x11: set clipboard: %w", desktop.Errorf(desktop.CodeTextTooLong,
			"clipboard text has %d bytes; the limit is %d", len(text), MaxClipboard))
	}
	if !utf8.ValidString(text) {
		return fmt.Errorf("x11: set clipboard: text is not valid UTF-8: %w", desktop.ErrInvalid)
	}
	ts, err := c.serverTime(ctx)
	if err != nil {
		return err
	}
	cl := &c.in.clip
	cl.mu.Lock()
	cl.owned, cl.text, cl.since = true, text, ts
	cl.mu.Unlock()
	xproto.SetSelectionOwner(c.xc, c.win, cl.atomClipboard, ts)
	r, err := xproto.GetSelectionOwner(c.xc, cl.atomClipboard).Reply()
	if err != nil {
		return c.wrap("set clipboard", err)
	}
	if r.Owner != c.win {
		cl.mu.Lock()
		if cl.since == ts {
			cl.owned, cl.text = false, ""
		}
		cl.mu.Unlock()
		return fmt.Errorf("x11: set clipboard: another client took the selection at the same time: %w", desktop.ErrConflict)
	}
	return nil
}

// onSelectionClear drops our text when another client takes CLIPBOARD.
func (c *Conn) onSelectionClear(e xproto.SelectionClearEvent) {
	cl := &c.in.clip
	if e.Owner != c.win || e.Selection != cl.atomClipboard {
		return
	}
	cl.mu.Lock()
	// A clear older than our latest ownership is about an earlier one.
	if e.Time == 0 || int32(e.Time-cl.since) >= 0 {
		cl.owned, cl.text = false, ""
	}
	cl.mu.Unlock()
}

// onSelectionRequest serves our text to another client. It only sends
// requests that need no reply, as the event loop must not wait.
func (c *Conn) onSelectionRequest(e xproto.SelectionRequestEvent) {
	cl := &c.in.clip
	cl.mu.Lock()
	owned, text, since := cl.owned, cl.text, cl.since
	cl.mu.Unlock()

	prop := e.Property
	if prop == 0 { // an obsolete requestor: the target names the property
		prop = e.Target
	}
	reply := xproto.SelectionNotifyEvent{
		Time: e.Time, Requestor: e.Requestor, Selection: e.Selection, Target: e.Target, Property: prop,
	}
	valid := owned && e.Owner == c.win && e.Selection == cl.atomClipboard &&
		(e.Time == 0 || int32(e.Time-since) >= 0)
	switch {
	case !valid:
		reply.Property = 0
	case e.Target == cl.atomTargets:
		atoms := []xproto.Atom{cl.atomTargets, cl.atomTimestamp, cl.atomUTF8, xproto.AtomString, cl.atomText}
		buf := make([]byte, 4*len(atoms))
		for i, a := range atoms {
			xgb.Put32(buf[4*i:], uint32(a))
		}
		xproto.ChangeProperty(c.xc, xproto.PropModeReplace, e.Requestor, prop, xproto.AtomAtom, 32, uint32(len(atoms)), buf)
	case e.Target == cl.atomTimestamp:
		buf := make([]byte, 4)
		xgb.Put32(buf, uint32(since))
		xproto.ChangeProperty(c.xc, xproto.PropModeReplace, e.Requestor, prop, xproto.AtomInteger, 32, 1, buf)
	case e.Target == cl.atomUTF8 || e.Target == cl.atomText:
		xproto.ChangeProperty(c.xc, xproto.PropModeReplace, e.Requestor, prop, cl.atomUTF8, 8, uint32(len(text)), []byte(text))
	case e.Target == xproto.AtomString:
		b := toLatin1(text)
		xproto.ChangeProperty(c.xc, xproto.PropModeReplace, e.Requestor, prop, xproto.AtomString, 8, uint32(len(b)), b)
	default:
		reply.Property = 0
	}
	xproto.SendEvent(c.xc, false, e.Requestor, 0, string(reply.Bytes()))
}

// toLatin1 encodes s as ISO 8859-1, with "?" for what it cannot hold.
func toLatin1(s string) []byte {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			r = '?'
		}
		b = append(b, byte(r))
	}
	return b
}

// onSelectionNotify hands the owner's answer to the waiting Clipboard read.
func (c *Conn) onSelectionNotify(e xproto.SelectionNotifyEvent) {
	if e.Requestor != c.win {
		return
	}
	select {
	case c.in.clip.notify <- e:
	default:
	}
}

// Clipboard returns the text on the CLIPBOARD selection, or "" when nobody
// owns it. Without a deadline in ctx it waits at most 2 s for the owner.
func (c *Conn) Clipboard(ctx context.Context) (string, error) {
	cl := &c.in.clip
	cl.mu.Lock()
	owned, text := cl.owned, cl.text
	cl.mu.Unlock()
	if owned {
		r, err := xproto.GetSelectionOwner(c.xc, cl.atomClipboard).Reply()
		if err != nil {
			return "", c.wrap("clipboard", err)
		}
		if r.Owner == c.win {
			return text, nil
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, clipboardTimeout)
		defer cancel()
	}
	cl.readMu.Lock()
	defer cl.readMu.Unlock()
	ts, err := c.serverTime(ctx)
	if err != nil {
		return "", err
	}
	for _, target := range []xproto.Atom{cl.atomUTF8, xproto.AtomString} {
		// Drop answers to reads that timed out earlier.
		for len(cl.notify) > 0 {
			<-cl.notify
		}
		xproto.ConvertSelection(c.xc, c.win, cl.atomClipboard, target, cl.atomProp, ts)
		e, err := c.waitSelection(ctx, ts)
		if err != nil {
			return "", err
		}
		if e.Property == 0 {
			continue // no owner, or it refused this target
		}
		return c.readSelection(ctx)
	}
	return "", nil
}

// waitSelection waits for the SelectionNotify answering the request made
// at ts.
func (c *Conn) waitSelection(ctx context.Context, ts xproto.Timestamp) (xproto.SelectionNotifyEvent, error) {
	for {
		select {
		case e := <-c.in.clip.notify:
			if e.Selection == c.in.clip.atomClipboard && (e.Time == ts || e.Time == 0) {
				return e, nil
			}
		case <-ctx.Done():
			return xproto.SelectionNotifyEvent{}, fmt.Errorf("x11: clipboard: the owner did not answer: %w", ctx.Err())
		case <-c.done:
			return xproto.SelectionNotifyEvent{}, c.Err()
		}
	}
}

// readSelection reads and deletes the property the owner wrote, following
// the INCR protocol when the owner sends the text in chunks.
func (c *Conn) readSelection(ctx context.Context) (string, error) {
	cl := &c.in.clip
	for len(cl.propNew) > 0 {
		<-cl.propNew
	}
	typ, data, err := c.readProp()
	if err != nil {
		return "", err
	}
	if typ == cl.atomIncr {
		// Deleting the INCR property asked for the first chunk; each chunk
		// arrives as a new value, and an empty one ends the transfer.
		data = nil
		for {
			select {
			case <-cl.propNew:
			case <-ctx.Done():
				return "", fmt.Errorf("x11: clipboard: incremental transfer stalled: %w", ctx.Err())
			case <-c.done:
				return "", c.Err()
			}
			t, chunk, err := c.readProp()
			if err != nil {
				return "", err
			}
			if len(chunk) == 0 {
				break
			}
			typ = t
			data = append(data, chunk...)
			if len(data) > maxClipboardRead {
				return "", fmt.Errorf("x11: clipboard: text over %d bytes: %w", maxClipboardRead, desktop.ErrTooLarge)
			}
		}
	}
	return propText(&xproto.GetPropertyReply{Format: 8, Type: typ, Value: data}, cl.atomUTF8), nil
}

// readProp reads our read property whole and deletes it.
func (c *Conn) readProp() (xproto.Atom, []byte, error) {
	cl := &c.in.clip
	var data []byte
	var typ xproto.Atom
	for offset := uint32(0); ; {
		r, err := xproto.GetProperty(c.xc, true, c.win, cl.atomProp, xproto.GetPropertyTypeAny, offset, 1<<20).Reply()
		if err != nil {
			return 0, nil, c.wrap("clipboard: read property", err)
		}
		typ = r.Type
		data = append(data, r.Value...)
		if r.BytesAfter == 0 {
			return typ, data, nil
		}
		if len(data) > maxClipboardRead {
			xproto.DeleteProperty(c.xc, c.win, cl.atomProp)
			return 0, nil, fmt.Errorf("x11: clipboard: text over %d bytes: %w", maxClipboardRead, desktop.ErrTooLarge)
		}
		offset += uint32(len(r.Value)) / 4
	}
}
