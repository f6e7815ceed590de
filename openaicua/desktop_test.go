package openaicua

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/cuatest"
)

// TestRealDesktop runs a computer_call with a list of actions on a real
// desktop, shown to the model as a smaller display, with a safety check
// approved: a click into an xterm, typing, a key press and a move.
func TestRealDesktop(t *testing.T) {
	a := cuatest.StartAgent(t, cubicleBinary)
	ctx := context.Background()
	x := cuatest.StartXterm(t, a.Sandbox, "openaicua-xterm")

	approved := 0
	tool, err := New(ctx, a.Sandbox, Config{Display: desktop.Size{Width: 800, Height: 600},
		Approve: func(context.Context, []SafetyCheck) error { approved++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	w := x.Window
	centre := tool.scale.ToDisplay(desktop.Point{X: w.X + w.Width/2, Y: w.Y + w.Height/2})
	out := filepath.Join(x.Dir, "typed")
	cmd := fmt.Sprintf(`printf '\033]2;%%s\007' openai-done; echo typed-by-openai > %s`, out)
	acts := []map[string]any{
		{"type": "click", "button": "left", "x": centre.X, "y": centre.Y},
		{"type": "type", "text": cmd},
		{"type": "keypress", "keys": []string{"ENTER"}},
		{"type": "move", "x": 10, "y": 20},
		{"type": "screenshot"},
	}
	call := Call{Type: "computer_call", CallID: "call_1", PendingSafetyChecks: []SafetyCheck{{ID: "sc_1", Code: "irrelevant_domain"}}}
	for _, act := range acts {
		b, _ := json.Marshal(act)
		call.Actions = append(call.Actions, b)
	}
	o, err := tool.Run(ctx, call)
	if err != nil {
		t.Fatal(err)
	}
	if approved != 1 || len(o.AcknowledgedSafetyChecks) != 1 || o.AcknowledgedSafetyChecks[0].ID != "sc_1" {
		t.Errorf("approved %d times, acknowledged %+v; want sc_1 once", approved, o.AcknowledgedSafetyChecks)
	}
	if size, _, ok := cuatest.ImageSize(o.Image()); !ok || size.X != 800 || size.Y != 600 {
		t.Errorf("screenshot size = %v (ok %v), want the 800x600 display", size, ok)
	}
	cuatest.WaitFor(t, "the file the typed command writes", 30*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(out)
		return string(b) == "typed-by-openai\n", fmt.Sprintf("%q", b)
	})
	cuatest.WaitFor(t, "the window title the typed command sets", 30*time.Second, func() (bool, string) {
		got := cuatest.Title(ctx, a.Sandbox, w.ID)
		return got == "openai-done", got
	})
	p, err := a.Sandbox.GetCursorPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := tool.scale.ToScreen(desktop.Point{X: 10, Y: 20}); p != want {
		t.Errorf("pointer at %v, want %v", p, want)
	}
}
