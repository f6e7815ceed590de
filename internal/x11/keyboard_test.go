package x11

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

// keyTrace turns key events into "+Control_L -a" style strings, naming
// each keycode by its level 0 keysym in the mapping km.
func keyTrace(km map[xproto.Keycode][2]desktop.Keysym, evs []xgb.Event) []string {
	var out []string
	for _, e := range evs {
		switch e := e.(type) {
		case xproto.KeyPressEvent:
			out = append(out, "+"+keyLabel(km[e.Detail][0]))
		case xproto.KeyReleaseEvent:
			out = append(out, "-"+keyLabel(km[e.Detail][0]))
		}
	}
	return out
}

// keyLabel names a keysym, or shows the character of a Unicode keysym.
func keyLabel(ks desktop.Keysym) string {
	if n := desktop.KeyName(ks); n != "" {
		return n
	}
	if r := desktop.KeysymRune(ks); r >= 0 {
		return string(r)
	}
	return fmt.Sprintf("%#x", uint32(ks))
}

func keys(t testing.TB, names ...string) []desktop.Keysym {
	t.Helper()
	out := make([]desktop.Keysym, len(names))
	for i, n := range names {
		out[i] = key(t, n)
	}
	return out
}

func TestKeyComboArrives(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	win.focus(t)
	ctx := context.Background()
	tests := []struct {
		keys []string
		want []string
	}{
		{[]string{"ctrl", "a"}, []string{"+Control_L", "+a", "-a", "-Control_L"}},
		{[]string{"ctrl", "shift", "t"}, []string{"+Control_L", "+Shift_L", "+t", "-t", "-Shift_L", "-Control_L"}},
		{[]string{"A"}, []string{"+Shift_L", "+a", "-a", "-Shift_L"}},
		{[]string{"shift", "A"}, []string{"+Shift_L", "+a", "-a", "-Shift_L"}},
		{[]string{"Return"}, []string{"+Return", "-Return"}},
		{[]string{"F5"}, []string{"+F5", "-F5"}},
		{[]string{"super", "e"}, []string{"+Super_L", "+e", "-e", "-Super_L"}},
		{[]string{"alt", "Tab"}, []string{"+Alt_L", "+Tab", "-Tab", "-Alt_L"}},
		// Not on the layout: mapped onto a spare keycode.
		{[]string{"é"}, []string{"+eacute", "-eacute"}},
		{[]string{"ctrl", "ж"}, []string{"+Control_L", "+ж", "-ж", "-Control_L"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.keys, "+"), func(t *testing.T) {
			win.reset()
			if err := c.KeyCombo(ctx, keys(t, tt.keys...)); err != nil {
				t.Fatalf("KeyCombo(%v): %v", tt.keys, err)
			}
			evs := win.waitInput(t, len(tt.want), isKey)
			if got := keyTrace(win.keysyms(t), evs); !slices.Equal(got, tt.want) {
				t.Errorf("KeyCombo(%v) gave %v, want %v", tt.keys, got, tt.want)
			}
		})
	}
	t.Run("modifier state", func(t *testing.T) {
		win.reset()
		if err := c.KeyCombo(ctx, keys(t, "ctrl", "shift", "x")); err != nil {
			t.Fatal(err)
		}
		evs := win.waitInput(t, 6, isKey)
		press := evs[2].(xproto.KeyPressEvent)
		if want := uint16(xproto.ModMaskControl | xproto.ModMaskShift); press.State&want != want {
			t.Errorf("x pressed with state %#x, want control and shift (%#x)", press.State, want)
		}
	})
}

func TestKeyDownUpAndHold(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	win.focus(t)
	ctx := context.Background()

	if err := c.KeyDown(ctx, keys(t, "shift")); err != nil {
		t.Fatalf("KeyDown: %v", err)
	}
	if err := c.TypeText(ctx, "b"); err != nil {
		t.Fatalf("TypeText: %v", err)
	}
	evs := win.waitInput(t, 3, isKey)
	if got, want := keyTrace(win.keysyms(t), evs), []string{"+Shift_L", "+b", "-b"}; !slices.Equal(got, want) {
		t.Fatalf("KeyDown(shift), TypeText(b) gave %v, want %v", got, want)
	}
	if st := evs[1].(xproto.KeyPressEvent).State; st&xproto.ModMaskShift == 0 {
		t.Errorf("b pressed with state %#x while shift is down, want shift", st)
	}
	win.reset()
	if err := c.KeyUp(ctx, keys(t, "shift")); err != nil {
		t.Fatalf("KeyUp: %v", err)
	}
	if got := keyTrace(win.keysyms(t), win.waitInput(t, 1, isKey)); !slices.Equal(got, []string{"-Shift_L"}) {
		t.Fatalf("KeyUp(shift) gave %v, want [-Shift_L]", got)
	}

	win.reset()
	if err := c.HoldKeys(ctx, keys(t, "ctrl", "x"), 30*time.Millisecond); err != nil {
		t.Fatalf("HoldKeys: %v", err)
	}
	want := []string{"+Control_L", "+x", "-x", "-Control_L"}
	if got := keyTrace(win.keysyms(t), win.waitInput(t, 4, isKey)); !slices.Equal(got, want) {
		t.Fatalf("HoldKeys(ctrl, x) gave %v, want %v", got, want)
	}

	// A cancelled hold still releases its keys.
	win.reset()
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.HoldKeys(hctx, keys(t, "alt"), time.Hour) }()
	win.waitInput(t, 1, isKey)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled HoldKeys returned %v, want context.Canceled", err)
	}
	if got := keyTrace(win.keysyms(t), win.waitInput(t, 2, isKey)); !slices.Equal(got, []string{"+Alt_L", "-Alt_L"}) {
		t.Errorf("cancelled HoldKeys(alt) gave %v, want [+Alt_L -Alt_L]", got)
	}
}

// typedKeysyms decodes the characters a key event stream types: each key
// press, other than of a modifier, at level 1 when shift is in its state.
func typedKeysyms(km map[xproto.Keycode][2]desktop.Keysym, evs []xgb.Event) []desktop.Keysym {
	var out []desktop.Keysym
	for _, e := range evs {
		p, ok := e.(xproto.KeyPressEvent)
		if !ok {
			continue
		}
		syms := km[p.Detail]
		if desktop.IsModifier(syms[0]) {
			continue
		}
		ks := syms[0]
		if p.State&xproto.ModMaskShift != 0 && syms[1] != 0 {
			ks = syms[1]
		}
		out = append(out, ks)
	}
	return out
}

func TestTypeTextKeyEvents(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	win.focus(t)
	ctx := context.Background()
	for _, text := range []string{"hello", "Hello, World!", "~`!@#$%^&*()_+{}|:\"<>?", "a\tb\nc", "ünïcödé ж € ☃", "ÄÖÜ Éß Ж Ñ"} {
		t.Run(text, func(t *testing.T) {
			win.reset()
			if err := c.TypeText(ctx, text); err != nil {
				t.Fatalf("TypeText(%q): %v", text, err)
			}
			var want []desktop.Keysym
			for _, r := range text {
				want = append(want, desktop.RuneKeysym(r))
			}
			evs := win.waitInput(t, 2*len(want), func(e xgb.Event) bool {
				return isKey(e)
			})
			// Wait for the trailing shift releases as well.
			evs = win.wait(t, "all key releases", func(evs []xgb.Event) bool {
				var down int
				for _, e := range input(evs) {
					switch e.(type) {
					case xproto.KeyPressEvent:
						down++
					case xproto.KeyReleaseEvent:
						down--
					}
				}
				return down == 0 && len(typedKeysyms(win.keysyms(t), evs)) >= len(want)
			})
			if got := typedKeysyms(win.keysyms(t), evs); !slices.Equal(got, want) {
				t.Errorf("TypeText(%q) pressed keysyms %#x, want %#x", text, got, want)
			}
		})
	}
}

func TestKeyboardFollowsMappingChange(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	win.focus(t)
	ctx := context.Background()
	km := win.keysyms(t)
	var codeA xproto.Keycode
	for kc, syms := range km {
		if syms[0] == 'a' {
			codeA = kc
		}
	}
	if codeA == 0 {
		t.Fatal("the layout has no key for a")
	}
	// Another client makes the a key type q.
	remap := func(ks0, ks1 xproto.Keysym) {
		err := xproto.ChangeKeyboardMappingChecked(win.xc, 1, codeA, 2, []xproto.Keysym{ks0, ks1}).Check()
		if err != nil {
			t.Fatalf("remap keycode %d: %v", codeA, err)
		}
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	remap('q', 'Q')
	t.Cleanup(func() { remap('a', 'A') })

	if err := c.TypeText(ctx, "aq"); err != nil {
		t.Fatalf("TypeText: %v", err)
	}
	evs := win.waitInput(t, 4, isKey)
	km = win.keysyms(t)
	if got, want := typedKeysyms(km, evs), []desktop.Keysym{'a', 'q'}; !slices.Equal(got, want) {
		t.Errorf("after remapping, TypeText(aq) pressed %#x, want %#x", got, want)
	}
	if p := evs[0].(xproto.KeyPressEvent); p.Detail == codeA {
		t.Errorf("a was typed with keycode %d, which now types q", codeA)
	}
}

func TestTypeTextInTerminal(t *testing.T) {
	s, c := testDisplay(t)
	text1000 := mixedText(1000)
	tests := []struct {
		name, text, want string
	}{
		{"unicode", "Grüße, 東京 ☃ ñ € — ok", ""},
		{"upper-case letters off the keymap", "ÄÖÜ É Ж Ñ Ł", ""},
		{"ascii", " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~", ""},
		{"lines and tabs", "line one\n\tindented\r\nthird", "line one\n\tindented\nthird"},
		{"1000 mixed characters", text1000, ""},
	}
	terminals := []struct {
		name string
		argv []string
	}{
		{"xterm", []string{"xterm", "-u8", "-T", "TITLE", "-geometry", "120x40+10+10", "-e", "sh", "-c", "stty -echo; exec cat > FILE"}},
		{"xfce4-terminal", []string{"xfce4-terminal", "--disable-server", "--title=TITLE", "--geometry=120x40+10+10",
			"-x", "sh", "-c", "stty -echo; exec cat > FILE"}},
	}
	for i, term := range terminals {
		t.Run(term.name, func(t *testing.T) {
			for j, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					tm := startTerminal(t, s, c, fmt.Sprintf("typing-%d-%d", i, j), term.argv...)
					want := tt.want
					if want == "" {
						want = tt.text
					}
					tm.typeText(t, c, tt.text, want)
				})
			}
		})
	}
}

func TestTypeTextRecyclesSpareKeycodes(t *testing.T) {
	s, c := testDisplay(t)
	// More distinct characters than there are spare keycodes.
	var b strings.Builder
	for r := 'α'; r <= 'ω'; r++ {
		b.WriteRune(r)
	}
	for r := 'а'; r <= 'я'; r++ {
		b.WriteRune(r)
	}
	text := b.String() + " " + b.String()
	c.in.mu.Lock()
	spares := len(c.in.kb.spares)
	// How long a client may lag behind before it misreads a recycled
	// keycode depends on the load; this test checks the recycling itself.
	c.in.settle = time.Second
	c.in.mu.Unlock()
	if distinct := len([]rune(b.String())); distinct <= spares {
		t.Fatalf("the text has %d distinct characters outside the layout, no more than the %d spare keycodes", distinct, spares)
	}
	tm := startTerminal(t, s, c, "recycle", "xterm", "-u8", "-T", "TITLE", "-e", "sh", "-c", "stty -echo; exec cat > FILE")
	tm.typeText(t, c, text, text)
}

func TestKeyInputConcurrentCallersDoNotInterleave(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	win.focus(t)
	ctx := context.Background()
	const workers, rounds = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				var err error
				switch w % 3 {
				case 0:
					err = c.KeyCombo(ctx, keys(t, "ctrl", "a"))
				case 1:
					err = c.TypeText(ctx, "Xé")
				default:
					err = c.Click(ctx, desktop.Left, 1, keys(t, "shift"))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// 4 key events per combo, 6 per "Xé", 2 per shift of a click.
	const total = rounds * (4 + 4 + 6 + 2)
	evs := win.waitInput(t, total, isKey)
	km := win.keysyms(t)
	allowed := []string{
		"+Control_L +a -a -Control_L",
		"+Shift_L +x -x -Shift_L", "+eacute -eacute",
		"+Shift_L -Shift_L",
	}
	var group []string
	for _, k := range keyTrace(km, evs) {
		group = append(group, k)
		down := 0
		for _, g := range group {
			if g[0] == '+' {
				down++
			} else {
				down--
			}
		}
		if down == 0 {
			if g := strings.Join(group, " "); !slices.Contains(allowed, g) {
				t.Fatalf("interleaved key sequence %q", g)
			}
			group = nil
		}
	}
}

func TestKeyInputCloseReleasesAndRestores(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	win.focus(t)
	ctx := context.Background()
	empty := func() int {
		n := 0
		for _, syms := range win.keysyms(t) {
			if syms == [2]desktop.Keysym{} {
				n++
			}
		}
		return n
	}
	before := empty()
	if err := c.MoveMouse(ctx, desktop.Point{X: 300, Y: 200}); err != nil {
		t.Fatal(err)
	}
	if err := c.KeyDown(ctx, keys(t, "shift", "ж")); err != nil {
		t.Fatal(err)
	}
	if err := c.TypeText(ctx, "€☃"); err != nil {
		t.Fatal(err)
	}
	if err := c.ButtonDown(ctx, desktop.Middle); err != nil {
		t.Fatal(err)
	}
	if got := empty(); got != before-3 {
		t.Errorf("with 3 characters mapped there are %d empty keycodes, want %d", got, before-3)
	}
	win.reset()
	c.Close()
	evs := win.waitInput(t, 3, func(e xgb.Event) bool {
		_, key := e.(xproto.KeyReleaseEvent)
		_, button := e.(xproto.ButtonReleaseEvent)
		return key || button
	})
	released := map[string]bool{}
	for _, e := range evs {
		if b, ok := e.(xproto.ButtonReleaseEvent); ok {
			released["button "+fmt.Sprint(b.Detail)] = true
		}
	}
	poll(t, "the spare keycodes to be emptied", func() bool { return empty() == before })
	km := win.keysyms(t)
	for _, k := range keyTrace(km, evs) {
		released[k] = true
	}
	for _, want := range []string{"-Shift_L", "button 2"} {
		if !released[want] {
			t.Errorf("Close did not release %s; releases: %v", want, released)
		}
	}
	var zhe int
	for _, e := range evs {
		if _, ok := e.(xproto.KeyReleaseEvent); ok && km[e.(xproto.KeyReleaseEvent).Detail] == [2]desktop.Keysym{} {
			zhe++
		}
	}
	if zhe != 1 {
		t.Errorf("Close released %d keys that were mapped for the session, want 1 (ж)", zhe)
	}
}

// mixedText is n characters of words in several scripts, symbols and
// digits, with a newline now and then and none at the end.
func mixedText(n int) string {
	words := []string{"Grüße", "Tokyo", "東京", "snow☃", "ñandú", "5€", "—", "ok!", "A&B", "x=y+1;",
		"{[()]}", "ÆØÅ", "über", "#42", "~path/to", "Ωmega"}
	var b strings.Builder
	for i := 0; b.Len() < 4*n; i++ {
		b.WriteString(words[(i*7)%len(words)])
		if i%9 == 8 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
	r := []rune(b.String())[:n]
	for r[len(r)-1] == '\n' || r[len(r)-1] == ' ' {
		r[len(r)-1] = '.'
	}
	return string(r)
}
