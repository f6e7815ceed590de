package x11

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
)

// dialSecond opens a second Conn on the display of c. It syncs c first: xgb
// registers extension event decoders in package-level maps when a
// connection starts, and every event c decoded must be ordered before that.
func dialSecond(t *testing.T, c *Conn) *Conn {
	t.Helper()
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dialTest(t, c.Display())
}

func TestClipboardRoundTripBetweenConns(t *testing.T) {
	_, a := testDisplay(t)
	b := dialSecond(t, a)
	ctx := context.Background()
	largest := strings.Repeat("0123456789abcdé\n", MaxClipboard/17)
	largest += strings.Repeat("x", MaxClipboard-len(largest))
	tests := []struct{ name, text string }{
		{"ascii", "hello clipboard"},
		{"unicode", "Grüße, 東京 ☃ ñ € — ok"},
		{"lines", "one\ntwo\r\n\tthree\n"},
		{"empty", ""},
		{"largest", largest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.text) > MaxClipboard {
				t.Fatalf("test text has %d bytes, over the limit", len(tt.text))
			}
			if err := a.SetClipboard(ctx, tt.text); err != nil {
				t.Fatalf("SetClipboard: %v", err)
			}
			for name, c := range map[string]*Conn{"owner": a, "other": b} {
				got, err := c.Clipboard(ctx)
				if err != nil {
					t.Fatalf("%s: Clipboard: %v", name, err)
				}
				if got != tt.text {
					t.Errorf("%s: Clipboard() = %d bytes %.40q, want %d bytes %.40q", name, len(got), got, len(tt.text), tt.text)
				}
			}
		})
	}
	// The other side takes over: the first owner now reads its text.
	if err := b.SetClipboard(ctx, "taken over"); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Conn{"old owner": a, "new owner": b} {
		got, err := c.Clipboard(ctx)
		if err != nil || got != "taken over" {
			t.Errorf("%s: Clipboard() = %q, %v, want %q", name, got, err, "taken over")
		}
	}
}

func TestClipboardWithoutOwnerIsEmpty(t *testing.T) {
	_, c := testDisplay(t)
	got, err := c.Clipboard(context.Background())
	if err != nil || got != "" {
		t.Errorf("Clipboard() with no owner = %q, %v, want \"\", nil", got, err)
	}
}

// selectionOwner is another X client that owns CLIPBOARD and answers
// requests as the test says.
type selectionOwner struct {
	xc   *xgb.Conn
	win  xproto.Window
	done chan struct{}
}

// ownerBehaviour says how a selectionOwner answers.
type ownerBehaviour struct {
	text      string
	onlyLatin bool // refuse UTF8_STRING, serve STRING (Latin-1)
	chunk     int  // serve with INCR in chunks of this size
	silent    bool // never answer
}

func newSelectionOwner(t *testing.T, display string, b ownerBehaviour) *selectionOwner {
	t.Helper()
	xc, err := rawConn(display)
	if err != nil {
		t.Fatal(err)
	}
	o := &selectionOwner{xc: xc, done: make(chan struct{})}
	t.Cleanup(func() {
		xc.Close()
		<-o.done
	})
	atom := func(name string) xproto.Atom {
		r, err := xproto.InternAtom(xc, false, uint16(len(name)), name).Reply()
		if err != nil {
			t.Fatal(err)
		}
		return r.Atom
	}
	clipboard, utf8Atom, incr := atom("CLIPBOARD"), atom("UTF8_STRING"), atom("INCR")
	screen := xproto.Setup(xc).DefaultScreen(xc)
	o.win, _ = xproto.NewWindowId(xc)
	err = xproto.CreateWindowChecked(xc, 0, o.win, screen.Root, 0, 0, 1, 1, 0, xproto.WindowClassInputOnly,
		screen.RootVisual, 0, nil).Check()
	if err != nil {
		t.Fatal(err)
	}
	xproto.SetSelectionOwner(xc, o.win, clipboard, xproto.TimeCurrentTime)
	if r, err := xproto.GetSelectionOwner(xc, clipboard).Reply(); err != nil || r.Owner != o.win {
		t.Fatalf("test owner did not get the selection: %v", err)
	}
	go func() {
		defer close(o.done)
		// INCR transfers in progress, by requestor window and property.
		type transfer struct {
			data []byte
			typ  xproto.Atom
		}
		pending := map[[2]uint32]*transfer{}
		for {
			ev, err := xc.WaitForEvent()
			if ev == nil && err == nil {
				return
			}
			switch e := ev.(type) {
			case xproto.SelectionRequestEvent:
				if b.silent {
					continue
				}
				n := xproto.SelectionNotifyEvent{Time: e.Time, Requestor: e.Requestor, Selection: e.Selection,
					Target: e.Target, Property: e.Property}
				data, typ := []byte(b.text), utf8Atom
				switch {
				case b.onlyLatin && e.Target == xproto.AtomString:
					data, typ = toLatin1(b.text), xproto.AtomString
				case b.onlyLatin || e.Target != utf8Atom:
					n.Property = 0
				}
				if n.Property != 0 {
					if b.chunk > 0 && len(data) > b.chunk {
						// Announce INCR and hand out chunks as the requestor
						// deletes the property.
						xproto.ChangeWindowAttributes(xc, e.Requestor, xproto.CwEventMask,
							[]uint32{xproto.EventMaskPropertyChange})
						size := make([]byte, 4)
						xgb.Put32(size, uint32(len(data)))
						xproto.ChangeProperty(xc, xproto.PropModeReplace, e.Requestor, e.Property, incr, 32, 1, size)
						pending[[2]uint32{uint32(e.Requestor), uint32(e.Property)}] = &transfer{data: data, typ: typ}
					} else {
						xproto.ChangeProperty(xc, xproto.PropModeReplace, e.Requestor, e.Property, typ, 8,
							uint32(len(data)), data)
					}
				}
				xproto.SendEvent(xc, false, e.Requestor, 0, string(n.Bytes()))
			case xproto.PropertyNotifyEvent:
				k := [2]uint32{uint32(e.Window), uint32(e.Atom)}
				tr := pending[k]
				if tr == nil || e.State != xproto.PropertyDelete {
					continue
				}
				part := tr.data[:min(b.chunk, len(tr.data))]
				tr.data = tr.data[len(part):]
				xproto.ChangeProperty(xc, xproto.PropModeReplace, e.Window, e.Atom, tr.typ, 8, uint32(len(part)), part)
				if len(part) == 0 {
					delete(pending, k)
				}
			}
		}
	}()
	return o
}

func TestClipboardReadsOtherOwners(t *testing.T) {
	big := strings.Repeat("line of text with ü and ☃\n", 40000) // about 1.2 MB
	tests := []struct {
		name string
		b    ownerBehaviour
		want string
	}{
		{"utf8", ownerBehaviour{text: "from another client ☃"}, "from another client ☃"},
		{"latin-1 only", ownerBehaviour{text: "café über", onlyLatin: true}, "café über"},
		{"incremental", ownerBehaviour{text: big, chunk: 64 << 10}, big},
		{"incremental small chunks", ownerBehaviour{text: "abcdefghij", chunk: 3}, "abcdefghij"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := testDisplay(t)
			newSelectionOwner(t, s.Display, tt.b)
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			got, err := c.Clipboard(ctx)
			if err != nil {
				t.Fatalf("Clipboard: %v", err)
			}
			if got != tt.want {
				t.Errorf("Clipboard() = %d bytes %.60q, want %d bytes %.60q", len(got), got, len(tt.want), tt.want)
			}
		})
	}
}

func TestClipboardOwnerThatNeverAnswers(t *testing.T) {
	s, c := testDisplay(t)
	newSelectionOwner(t, s.Display, ownerBehaviour{silent: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Clipboard(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Clipboard() from a silent owner = %v, want context.DeadlineExceeded", err)
	}
	// Without a deadline of its own, Clipboard stops by itself.
	if _, err := c.Clipboard(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Clipboard() from a silent owner without deadline = %v, want context.DeadlineExceeded", err)
	}
	// A later owner is read normally; the late answers are not mixed up.
	if err := c.SetClipboard(context.Background(), "mine"); err != nil {
		t.Fatal(err)
	}
	newSelectionOwner(t, s.Display, ownerBehaviour{text: "theirs"})
	if got, err := c.Clipboard(context.Background()); err != nil || got != "theirs" {
		t.Errorf("Clipboard() = %q, %v, want \"theirs\"", got, err)
	}
}

func TestClipboardServesTargets(t *testing.T) {
	s, c := testDisplay(t)
	ctx := context.Background()
	const text = "ünïcode ☃ text"
	if err := c.SetClipboard(ctx, text); err != nil {
		t.Fatal(err)
	}
	// A plain X client asks for each target.
	w := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	w.reset()
	xproto.ChangeWindowAttributes(w.xc, w.win, xproto.CwEventMask, []uint32{xproto.EventMaskPropertyChange})
	ask := func(target string) (xproto.Atom, []byte) {
		t.Helper()
		w.reset()
		prop := w.atom(t, "TEST_PROP")
		xproto.ConvertSelection(w.xc, w.win, w.atom(t, "CLIPBOARD"), w.atom(t, target), prop, xproto.TimeCurrentTime)
		var n xproto.SelectionNotifyEvent
		w.wait(t, "SelectionNotify for "+target, func(evs []xgb.Event) bool {
			for _, e := range evs {
				if sn, ok := e.(xproto.SelectionNotifyEvent); ok {
					n = sn
					return true
				}
			}
			return false
		})
		if n.Property == 0 {
			return 0, nil
		}
		r, err := xproto.GetProperty(w.xc, true, w.win, n.Property, xproto.GetPropertyTypeAny, 0, 1<<20).Reply()
		if err != nil {
			t.Fatal(err)
		}
		return r.Type, r.Value
	}
	typ, val := ask("UTF8_STRING")
	if typ != w.atom(t, "UTF8_STRING") || string(val) != text {
		t.Errorf("UTF8_STRING: got type %d value %q, want %q", typ, val, text)
	}
	typ, val = ask("STRING")
	if want := "ünïcode ? text"; typ != xproto.AtomString || string(toUTF8(val)) != want {
		t.Errorf("STRING: got type %d value %q, want Latin-1 %q", typ, val, want)
	}
	if typ, val = ask("TEXT"); string(val) != text {
		t.Errorf("TEXT: got type %d value %q, want %q", typ, val, text)
	}
	typ, val = ask("TARGETS")
	var names []string
	for i := 0; typ == xproto.AtomAtom && i+4 <= len(val); i += 4 {
		r, err := xproto.GetAtomName(w.xc, xproto.Atom(xgb.Get32(val[i:]))).Reply()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, r.Name)
	}
	for _, want := range []string{"TARGETS", "UTF8_STRING", "STRING", "TEXT"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("TARGETS = %v, missing %s", names, want)
		}
	}
	if typ, _ := ask("image/png"); typ != 0 {
		t.Errorf("image/png was answered with type %d, want a refusal", typ)
	}
}

// toUTF8 decodes Latin-1.
func toUTF8(b []byte) string { return latin1(string(b)) }
