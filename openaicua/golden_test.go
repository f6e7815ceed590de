package openaicua

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/cuatest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	xga = desktop.Size{Width: 1024, Height: 768}
	fhd = desktop.Size{Width: 1920, Height: 1080}
)

type goldenCase struct {
	name    string
	screen  desktop.Size
	call    string // a computer_call item
	approve bool
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{name: "actions/click_buttons", screen: xga, call: `{"type":"computer_call","call_id":"c1","actions":[
			{"type":"click","button":"left","x":10,"y":20},
			{"type":"click","button":"right","x":11,"y":21},
			{"type":"click","button":"wheel","x":12,"y":22},
			{"type":"click","button":"back","x":13,"y":23},
			{"type":"click","button":"forward","x":14,"y":24,"keys":["CTRL","SHIFT"]}]}`},
		{name: "actions/double_click", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"double_click","x":100,"y":200}}`},
		{name: "actions/drag", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"drag","path":[{"x":10,"y":10},{"x":50,"y":60},{"x":100,"y":100}],"keys":["ALT"]}}`},
		{name: "actions/keypress", screen: xga, call: `{"type":"computer_call","call_id":"c1","actions":[
			{"type":"keypress","keys":["CTRL","C"]},
			{"type":"keypress","keys":["ENTER"]},
			{"type":"keypress","keys":["ARROWLEFT"]},
			{"type":"keypress","keys":["CMD","SPACE"]},
			{"type":"keypress","keys":["ESC"]},
			{"type":"keypress","keys":["PAGEDOWN"]},
			{"type":"keypress","keys":["/"]}]}`},
		{name: "actions/move", screen: xga, call: `{"type":"computer_call","call_id":"c1","actions":[
			{"type":"move","x":300,"y":400},
			{"type":"move","x":301,"y":401,"keys":["SHIFT"]}]}`},
		{name: "actions/screenshot", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"screenshot"}}`},
		{name: "actions/scroll", screen: xga, call: `{"type":"computer_call","call_id":"c1","actions":[
			{"type":"scroll","x":500,"y":400,"scroll_x":0,"scroll_y":300},
			{"type":"scroll","x":500,"y":400,"scroll_x":-120,"scroll_y":0,"keys":["CTRL"]},
			{"type":"scroll","x":500,"y":400,"scroll_x":0,"scroll_y":-20},
			{"type":"scroll","x":500,"y":400,"scroll_x":0,"scroll_y":0}]}`},
		{name: "actions/type_wait", screen: xga, call: `{"type":"computer_call","call_id":"c1","actions":[
			{"type":"type","text":"hello\n"},
			{"type":"wait"}]}`},
		{name: "actions/batch_scaled", screen: fhd, call: `{"type":"computer_call","id":"cu_1","call_id":"c7","status":"completed","actions":[
			{"type":"click","button":"left","x":683,"y":384},
			{"type":"type","text":"cubicle"},
			{"type":"keypress","keys":["ENTER"]},
			{"type":"screenshot"},
			{"type":"move","x":1365,"y":767}]}`},
		{name: "safety/approved", screen: xga, approve: true, call: `{"type":"computer_call","call_id":"c1",
			"pending_safety_checks":[{"id":"sc_1","code":"malicious_instructions","message":"check it"}],
			"action":{"type":"click","button":"left","x":1,"y":2}}`},
		{name: "invalid/unknown_action", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"fly"}}`},
		{name: "invalid/unknown_key", screen: xga, call: `{"type":"computer_call","call_id":"c1","actions":[{"type":"move","x":1,"y":1},{"type":"keypress","keys":["CTRL","NOSUCHKEY"]}]}`},
		{name: "invalid/unknown_button", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"click","button":"thumb","x":1,"y":1}}`},
		{name: "invalid/out_of_range", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"click","button":"left","x":1024,"y":1}}`},
		{name: "invalid/out_of_range_scaled", screen: fhd, call: `{"type":"computer_call","call_id":"c1","action":{"type":"move","x":10,"y":768}}`},
		{name: "invalid/missing_x", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"move","y":1}}`},
		{name: "invalid/missing_button", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"click","x":1,"y":1}}`},
		{name: "invalid/x_string", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"move","x":"1","y":1}}`},
		{name: "invalid/keys_string", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"keypress","keys":"CTRL+C"}}`},
		{name: "invalid/no_keys", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"keypress","keys":[]}}`},
		{name: "invalid/short_path", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"drag","path":[{"x":1,"y":1}]}}`},
		{name: "invalid/bad_path_point", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"drag","path":[{"x":1,"y":1},{"x":2}]}}`},
		{name: "invalid/extra_field", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"type","text":"a","x":1}}`},
		{name: "invalid/empty_text", screen: xga, call: `{"type":"computer_call","call_id":"c1","action":{"type":"type","text":""}}`},
		{name: "invalid/no_action", screen: xga, call: `{"type":"computer_call","call_id":"c1"}`},
		{name: "invalid/action_not_object", screen: xga, call: `{"type":"computer_call","call_id":"c1","actions":["click"]}`},
	}
}

// golden is what a golden file holds: the batches sent to the desktop and
// the output, or the error.
type golden struct {
	Batches []json.RawMessage `json:"batches"`
	Output  *Output           `json:"output,omitempty"`
	Error   string            `json:"error,omitempty"`
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			f := cuatest.StartFake(t, c.screen)
			ctx := context.Background()
			var asked []SafetyCheck
			cfg := Config{}
			if c.approve {
				cfg.Approve = func(_ context.Context, checks []SafetyCheck) error {
					asked = append(asked, checks...)
					return nil
				}
			}
			tool, err := New(ctx, f.Sandbox, cfg)
			if err != nil {
				t.Fatal(err)
			}
			f.Batches(t)
			var call Call
			if err := json.Unmarshal([]byte(c.call), &call); err != nil {
				t.Fatal(err)
			}
			g := golden{}
			out, err := tool.Run(ctx, call)
			if err != nil {
				if !errors.Is(err, desktop.ErrInvalid) {
					t.Errorf("error %v is not of class ErrInvalid", err)
				}
				g.Error = err.Error()
			} else {
				g.Output = describeImage(t, out)
			}
			if c.approve && len(asked) != len(call.PendingSafetyChecks) {
				t.Errorf("approval hook saw %d checks, want %d", len(asked), len(call.PendingSafetyChecks))
			}
			g.Batches = f.Batches(t)
			cuatest.Golden(t, c.name, g, *update)
		})
	}
}

func describeImage(t *testing.T, o *Output) *Output {
	t.Helper()
	size, format, ok := cuatest.ImageSize(o.Image())
	if !ok || !strings.HasPrefix(o.Output.ImageURL, "data:image/"+format+";base64,") {
		t.Fatalf("output image_url is not a data URL of an image")
	}
	c := *o
	c.Output.ImageURL = fmt.Sprintf("data:image/%s;base64,<%dx%d>", format, size.X, size.Y)
	return &c
}

func TestSafetyChecksRefused(t *testing.T) {
	call := Call{Type: "computer_call", CallID: "c1", Action: json.RawMessage(`{"type":"click","button":"left","x":5,"y":5}`),
		PendingSafetyChecks: []SafetyCheck{{ID: "sc_1", Code: "sensitive_domain"}}}
	for _, c := range []struct {
		name    string
		approve func(context.Context, []SafetyCheck) error
		want    string
	}{
		{"no hook", nil, "no approval hook is set"},
		{"hook refuses", func(context.Context, []SafetyCheck) error { return errors.New("the user said no") }, "the user said no"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := cuatest.StartFake(t, xga)
			tool, err := New(context.Background(), f.Sandbox, Config{Approve: c.approve})
			if err != nil {
				t.Fatal(err)
			}
			f.Batches(t)
			out, err := tool.Run(context.Background(), call)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "sc_1") {
				t.Errorf("Run = %v, %v; want an ErrRefused error naming sc_1 and saying %q", out, err, c.want)
			}
			if b := f.Batches(t); len(b) != 0 {
				t.Errorf("the desktop got %d batches after a refusal, want none", len(b))
			}
		})
	}
}

func TestDefinitionJSON(t *testing.T) {
	tool, err := New(context.Background(), nil, Config{Screen: fhd})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		got  Definition
		want string
	}{
		{tool.Definition(), `{"type":"computer"}`},
		{tool.PreviewDefinition(), `{"type":"computer_use_preview","display_width":1366,"display_height":768,"environment":"linux"}`},
	} {
		b, _ := json.Marshal(c.got)
		if string(b) != c.want {
			t.Errorf("definition = %s, want %s", b, c.want)
		}
	}
}

// FuzzTranslate checks that no action makes the translation panic and that
// every action either translates to valid desktop actions or gives an error.
func FuzzTranslate(f *testing.F) {
	for _, c := range goldenCases() {
		f.Add(c.call)
	}
	tool, err := New(context.Background(), nil, Config{Screen: fhd})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var c Call
		if json.Unmarshal([]byte(in), &c) != nil {
			return
		}
		steps, err := tool.translate(c)
		if err != nil {
			if err.Error() == "" {
				t.Errorf("empty error for %q", in)
			}
			return
		}
		for _, st := range steps {
			for _, a := range st.Actions {
				if err := a.Validate(desktop.Limits{Screen: fhd}); err != nil {
					t.Errorf("input %q gave an invalid action %+v: %v", in, a, err)
				}
			}
		}
	})
}
