package claudetool

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/cuatest"
)

// TestRealDesktop runs a turn of several calls on a real desktop, with the
// model shown a display smaller than the screen: a click into an xterm,
// typing a command that sets the window title and writes a file, a key, a
// screenshot, a zoom and the cursor position.
func TestRealDesktop(t *testing.T) {
	a := cuatest.StartAgent(t, cubicleBinary)
	ctx := context.Background()
	x := cuatest.StartXterm(t, a.Sandbox, "claudetool-xterm")

	display := desktop.Size{Width: 800, Height: 600}
	tool, err := New(ctx, a.Sandbox, Config{Display: display, EnableZoom: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := tool.Screen(); got != (desktop.Size{Width: 1024, Height: 768}) {
		t.Fatalf("screen = %v, want 1024x768", got)
	}
	w := x.Window
	centre := tool.scale.ToDisplay(desktop.Point{X: w.X + w.Width/2, Y: w.Y + w.Height/2})
	out := filepath.Join(x.Dir, "typed")
	cmd := fmt.Sprintf(`printf '\033]2;%%s\007' claudetool-done; echo typed-by-claude > %s`, out)
	in := func(v map[string]any) json.RawMessage {
		b, _ := json.Marshal(v)
		return b
	}
	uses := []ToolUse{
		{ID: "u1", Name: Name, Input: in(map[string]any{"action": "left_click", "coordinate": []int{centre.X, centre.Y}})},
		{ID: "u2", Name: Name, Input: in(map[string]any{"action": "type", "text": cmd})},
		{ID: "u3", Name: Name, Input: in(map[string]any{"action": "key", "text": "Return"})},
		{ID: "u4", Name: Name, Input: in(map[string]any{"action": "screenshot"})},
		{ID: "u5", Name: Name, Input: in(map[string]any{"action": "zoom", "region": []int{0, 0, 200, 100}})},
		{ID: "u6", Name: Name, Input: in(map[string]any{"action": "cursor_position"})},
	}
	res, err := tool.Run(ctx, uses)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.IsError || r.ToolUseID != uses[i].ID {
			t.Errorf("result %d = %+v, want a success for %s", i, r, uses[i].ID)
		}
	}
	cuatest.WaitFor(t, "the file the typed command writes", 30*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(out)
		return string(b) == "typed-by-claude\n", fmt.Sprintf("%q", b)
	})
	cuatest.WaitFor(t, "the window title the typed command sets", 30*time.Second, func() (bool, string) {
		got := cuatest.Title(ctx, a.Sandbox, w.ID)
		return got == "claudetool-done", got
	})
	if size, _, ok := cuatest.ImageSize(res[3].Image()); !ok || size.X != 800 || size.Y != 600 {
		t.Errorf("screenshot size = %v (ok %v), want the 800x600 display", size, ok)
	}
	// The zoom region is 200x100 on the display, 256x128 on the screen,
	// taken at full resolution.
	if size, _, ok := cuatest.ImageSize(res[4].Image()); !ok || size.X != 256 || size.Y != 128 {
		t.Errorf("zoom size = %v (ok %v), want 256x128", size, ok)
	}
	want := fmt.Sprintf("X=%d,Y=%d", centre.X, centre.Y)
	if got := res[5].Content[0].Text; got != want {
		t.Errorf("cursor_position = %q, want %q", got, want)
	}
	p, err := a.Sandbox.GetCursorPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := tool.scale.ToDisplay(p); d != centre {
		t.Errorf("pointer at %v on the screen (%v on the display), want %v on the display", p, d, centre)
	}

	// A bad call in a later turn gets an is_error result and changes nothing.
	res, err = tool.Run(ctx, []ToolUse{{ID: "u7", Name: Name, Input: in(map[string]any{"action": "left_click", "coordinate": []int{800, 10}})}})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].IsError || !strings.Contains(res[0].Content[0].Text, "outside the 800x600 display") {
		t.Errorf("out-of-range click = %+v, want an is_error result about the display", res[0])
	}
}
