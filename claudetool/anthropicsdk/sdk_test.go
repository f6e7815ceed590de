package anthropicsdk

import (
	"encoding/json"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/cubicle-dev/cubicle/claudetool"
)

// The SDK params marshal to the same JSON as claudetool's own types.
func TestSameJSON(t *testing.T) {
	n := 0
	for _, d := range []claudetool.Definition{
		{Type: claudetool.Computer20241022, Name: "computer", DisplayWidthPx: 1024, DisplayHeightPx: 768, DisplayNumber: &n},
		{Type: claudetool.Computer20250124, Name: "computer", DisplayWidthPx: 1280, DisplayHeightPx: 800},
		{Type: claudetool.Computer20251124, Name: "computer", DisplayWidthPx: 1366, DisplayHeightPx: 768, EnableZoom: true},
	} {
		sameJSON(t, ToolParam(d), d)
	}
	for _, r := range []claudetool.ToolResult{
		{Type: "tool_result", ToolUseID: "toolu_1", Content: []claudetool.Content{{Type: "text", Text: "left_click done"},
			{Type: "image", Source: &claudetool.ImageSource{Type: "base64", MediaType: "image/png", Data: "iVBORw0KGgo="}}}},
		{Type: "tool_result", ToolUseID: "toolu_2", IsError: true, Content: []claudetool.Content{{Type: "text", Text: "unknown key"}}},
	} {
		sameJSON(t, ResultParam(r), r)
	}
}

func sameJSON(t *testing.T, sdk, ours any) {
	t.Helper()
	a, err := json.Marshal(sdk)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ours)
	var va, vb any
	json.Unmarshal(a, &va)
	json.Unmarshal(b, &vb)
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	if string(ja) != string(jb) {
		t.Errorf("SDK param JSON\n%s\ndiffers from\n%s", ja, jb)
	}
}

func TestToolUses(t *testing.T) {
	var m anthropic.BetaMessage
	err := json.Unmarshal([]byte(`{"id":"msg_1","type":"message","role":"assistant","model":"m","stop_reason":"tool_use",
		"content":[{"type":"text","text":"hi"},
		{"type":"tool_use","id":"toolu_1","name":"computer","input":{"action":"left_click","coordinate":[1,2]}},
		{"type":"tool_use","id":"toolu_2","name":"bash","input":{"command":"ls"}}]}`), &m)
	if err != nil {
		t.Fatal(err)
	}
	uses := ToolUses(&m)
	if len(uses) != 1 || uses[0].ID != "toolu_1" || string(uses[0].Input) != `{"action":"left_click","coordinate":[1,2]}` {
		t.Errorf("ToolUses = %+v, want the computer call toolu_1 with its input", uses)
	}
}
