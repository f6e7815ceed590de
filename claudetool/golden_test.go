package claudetool

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/cuatest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	xga  = desktop.Size{Width: 1024, Height: 768}
	fhd  = desktop.Size{Width: 1920, Height: 1080}
	wxga = desktop.Size{Width: 1280, Height: 800}
)

type goldenCase struct {
	name    string
	cfg     Config
	screen  desktop.Size
	inputs  []string // tool_use inputs of one turn
	useName string   // tool name; default "computer"
}

func goldenCases() []goldenCase {
	v1 := Config{Version: Computer20241022}
	v2 := Config{Version: Computer20250124}
	v3 := Config{Version: Computer20251124, EnableZoom: true}
	return []goldenCase{
		// Every action of every version.
		{name: "20241022/screenshot", cfg: v1, screen: xga, inputs: []string{`{"action":"screenshot"}`}},
		{name: "20241022/actions", cfg: v1, screen: xga, inputs: []string{
			`{"action":"mouse_move","coordinate":[100,200]}`,
			`{"action":"left_click"}`,
			`{"action":"right_click"}`,
			`{"action":"middle_click"}`,
			`{"action":"double_click"}`,
			`{"action":"left_click_drag","coordinate":[300,310]}`,
			`{"action":"key","text":"ctrl+a BackSpace"}`,
			`{"action":"type","text":"hello\nworld"}`,
			`{"action":"cursor_position"}`,
		}},
		{name: "20250124/clicks", cfg: v2, screen: xga, inputs: []string{
			`{"action":"left_click","coordinate":[10,20],"text":"shift"}`,
			`{"action":"right_click","coordinate":[11,21]}`,
			`{"action":"middle_click","coordinate":[12,22]}`,
			`{"action":"double_click","coordinate":[13,23],"text":"ctrl+shift"}`,
			`{"action":"triple_click","coordinate":[14,24]}`,
			`{"action":"left_mouse_down","coordinate":[15,25]}`,
			`{"action":"mouse_move","coordinate":[50,60]}`,
			`{"action":"left_mouse_up"}`,
			`{"action":"left_click_drag","start_coordinate":[100,100],"coordinate":[200,150]}`,
		}},
		{name: "20250124/scroll_hold_wait", cfg: v2, screen: xga, inputs: []string{
			`{"action":"scroll","coordinate":[500,400],"scroll_direction":"down","scroll_amount":3,"text":"ctrl"}`,
			`{"action":"scroll","scroll_direction":"up","scroll_amount":2}`,
			`{"action":"scroll","scroll_direction":"left","scroll_amount":1}`,
			`{"action":"scroll","scroll_direction":"right","scroll_amount":4}`,
			`{"action":"hold_key","text":"shift","duration":0.5}`,
			`{"action":"wait","duration":1}`,
		}},
		{name: "20251124/zoom", cfg: v3, screen: xga, inputs: []string{
			`{"action":"zoom","region":[0,0,512,384]}`,
		}},
		// A turn of several calls on a scaled display: one batch up to the
		// screenshot, one up to the zoom, one for the rest.
		{name: "20251124/multi_call_turn_scaled", cfg: v3, screen: fhd, inputs: []string{
			`{"action":"left_click","coordinate":[683,384]}`,
			`{"action":"type","text":"cubicle"}`,
			`{"action":"key","text":"Return"}`,
			`{"action":"screenshot"}`,
			`{"action":"zoom","region":[0,0,1366,768]}`,
			`{"action":"zoom","region":[100,100,200,150]}`,
			`{"action":"mouse_move","coordinate":[1365,767]}`,
			`{"action":"cursor_position"}`,
		}},
		{name: "scaling/wxga_explicit", cfg: Config{Display: wxga}, screen: fhd, inputs: []string{
			`{"action":"left_click","coordinate":[640,400]}`,
		}},
		{name: "scaling/4k", cfg: Config{}, screen: desktop.Size{Width: 3840, Height: 2160}, inputs: []string{
			`{"action":"mouse_move","coordinate":[0,0]}`,
			`{"action":"mouse_move","coordinate":[1365,767]}`,
		}},
		// Invalid input.
		{name: "invalid/newer_action", cfg: v1, screen: xga, inputs: []string{`{"action":"scroll","scroll_direction":"down","scroll_amount":1}`}},
		{name: "invalid/zoom_before_20251124", cfg: v2, screen: xga, inputs: []string{`{"action":"zoom","region":[0,0,10,10]}`}},
		{name: "invalid/zoom_disabled", cfg: Config{}, screen: xga, inputs: []string{`{"action":"zoom","region":[0,0,10,10]}`}},
		{name: "invalid/click_text_in_20241022", cfg: v1, screen: xga, inputs: []string{`{"action":"left_click","text":"shift"}`}},
		{name: "invalid/unknown_action", cfg: v3, screen: xga, inputs: []string{`{"action":"fly","coordinate":[1,1]}`}},
		{name: "invalid/no_action", cfg: v3, screen: xga, inputs: []string{`{"coordinate":[1,1]}`}},
		{name: "invalid/out_of_range", cfg: v3, screen: xga, inputs: []string{`{"action":"left_click","coordinate":[1024,10]}`}},
		{name: "invalid/out_of_range_scaled", cfg: v3, screen: fhd, inputs: []string{`{"action":"mouse_move","coordinate":[1366,100]}`}},
		{name: "invalid/negative", cfg: v3, screen: xga, inputs: []string{`{"action":"mouse_move","coordinate":[-1,10]}`}},
		{name: "invalid/unknown_key", cfg: v3, screen: xga, inputs: []string{`{"action":"key","text":"ctrl+nosuchkey"}`}},
		{name: "invalid/unknown_modifier", cfg: v3, screen: xga, inputs: []string{`{"action":"left_click","text":"hyperdrive"}`}},
		{name: "invalid/missing_coordinate", cfg: v3, screen: xga, inputs: []string{`{"action":"mouse_move"}`}},
		{name: "invalid/missing_text", cfg: v3, screen: xga, inputs: []string{`{"action":"type"}`}},
		{name: "invalid/coordinate_string", cfg: v3, screen: xga, inputs: []string{`{"action":"mouse_move","coordinate":"100,200"}`}},
		{name: "invalid/coordinate_three", cfg: v3, screen: xga, inputs: []string{`{"action":"mouse_move","coordinate":[1,2,3]}`}},
		{name: "invalid/text_number", cfg: v3, screen: xga, inputs: []string{`{"action":"type","text":42}`}},
		{name: "invalid/action_number", cfg: v3, screen: xga, inputs: []string{`{"action":7}`}},
		{name: "invalid/extra_field", cfg: v3, screen: xga, inputs: []string{`{"action":"type","text":"a","coordinate":[1,1]}`}},
		{name: "invalid/scroll_direction", cfg: v3, screen: xga, inputs: []string{`{"action":"scroll","scroll_direction":"diagonal","scroll_amount":1}`}},
		{name: "invalid/scroll_amount", cfg: v3, screen: xga, inputs: []string{`{"action":"scroll","scroll_direction":"up","scroll_amount":0}`}},
		{name: "invalid/zoom_empty_region", cfg: v3, screen: xga, inputs: []string{`{"action":"zoom","region":[10,10,10,20]}`}},
		{name: "invalid/zoom_region_outside", cfg: v3, screen: xga, inputs: []string{`{"action":"zoom","region":[0,0,1025,10]}`}},
		{name: "invalid/wait_too_long", cfg: v3, screen: xga, inputs: []string{`{"action":"wait","duration":61}`}},
		{name: "invalid/hold_key_no_duration", cfg: v3, screen: xga, inputs: []string{`{"action":"hold_key","text":"shift"}`}},
		{name: "invalid/input_not_object", cfg: v3, screen: xga, inputs: []string{`[1,2]`}},
		{name: "invalid/other_tool", cfg: v3, screen: xga, useName: "bash", inputs: []string{`{"command":"ls"}`}},
		// A bad call in the middle: the calls before it run (with the
		// screenshot), it fails, the ones after it do not run.
		{name: "invalid/middle_of_turn", cfg: v3, screen: xga, inputs: []string{
			`{"action":"left_click","coordinate":[10,10]}`,
			`{"action":"key","text":"Return"}`,
			`{"action":"key","text":"NoSuchKey"}`,
			`{"action":"type","text":"never typed"}`,
		}},
	}
}

// golden is what a golden file holds: the definition the model is given,
// the batches sent to the desktop and the results returned.
type golden struct {
	Definition Definition        `json:"definition"`
	Batches    []json.RawMessage `json:"batches"`
	Results    []ToolResult      `json:"results"`
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			f := cuatest.StartFake(t, c.screen)
			ctx := context.Background()
			tool, err := New(ctx, f.Sandbox, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			f.Batches(t) // forget the screen size request
			uses := make([]ToolUse, len(c.inputs))
			for i, in := range c.inputs {
				name := c.useName
				if name == "" {
					name = Name
				}
				uses[i] = ToolUse{ID: fmt.Sprintf("toolu_%02d", i+1), Name: name, Input: json.RawMessage(in)}
			}
			res, err := tool.Run(ctx, uses)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(res) != len(uses) {
				t.Fatalf("got %d results for %d calls", len(res), len(uses))
			}
			cuatest.Golden(t, c.name, golden{Definition: tool.Definition(), Batches: f.Batches(t), Results: describeImages(t, res)}, *update)
		})
	}
}

// describeImages replaces the image data of results with its format and
// size, which is what the golden files check.
func describeImages(t *testing.T, rs []ToolResult) []ToolResult {
	t.Helper()
	out := make([]ToolResult, len(rs))
	for i, r := range rs {
		r.Content = append([]Content(nil), r.Content...)
		for j, c := range r.Content {
			if c.Source == nil {
				continue
			}
			size, format, ok := cuatest.ImageSize(r.Image())
			if !ok || "image/"+format != c.Source.MediaType {
				t.Fatalf("result %d: image is not a %s", i, c.Source.MediaType)
			}
			src := *c.Source
			src.Data = fmt.Sprintf("<%s %dx%d>", format, size.X, size.Y)
			r.Content[j].Source = &src
		}
		out[i] = r
	}
	return out
}

func TestDefinitionJSON(t *testing.T) {
	n := 1
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Version: Computer20241022, DisplayNumber: &n}, `{"type":"computer_20241022","name":"computer","display_width_px":1024,"display_height_px":768,"display_number":1}`},
		{Config{Version: Computer20250124}, `{"type":"computer_20250124","name":"computer","display_width_px":1024,"display_height_px":768}`},
		{Config{EnableZoom: true}, `{"type":"computer_20251124","name":"computer","display_width_px":1024,"display_height_px":768,"enable_zoom":true}`},
	} {
		tool, err := New(context.Background(), nil, Config{Version: c.cfg.Version, DisplayNumber: c.cfg.DisplayNumber, EnableZoom: c.cfg.EnableZoom, Screen: xga})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(tool.Definition())
		if string(b) != c.want {
			t.Errorf("definition = %s, want %s", b, c.want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Version: "computer_1999", Screen: xga}, "unknown tool version"},
		{Config{Version: Computer20250124, EnableZoom: true, Screen: xga}, "zoom needs"},
		{Config{Format: "gif", Screen: xga}, "unknown screenshot format"},
		{Config{Display: desktop.Size{Width: -1, Height: 5}, Screen: xga}, "display size"},
	} {
		_, err := New(context.Background(), nil, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
}

// FuzzTranslate checks that no input makes the translation panic and that
// every input either translates to valid actions or gives an error.
func FuzzTranslate(f *testing.F) {
	for _, c := range goldenCases() {
		for _, in := range c.inputs {
			f.Add(in)
		}
	}
	tool, err := New(context.Background(), nil, Config{Screen: fhd, EnableZoom: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c := tool.translate(ToolUse{ID: "x", Name: Name, Input: json.RawMessage(in)})
		if c.err != nil {
			if message(c.err) == "" {
				t.Errorf("empty error message for %q", in)
			}
			return
		}
		for _, a := range c.step.Actions {
			if err := a.Validate(desktop.Limits{Screen: fhd}); err != nil {
				t.Errorf("input %q gave an invalid action %+v: %v", in, a, err)
			}
		}
	})
}
