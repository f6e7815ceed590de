package openaisdk

import (
	"encoding/json"
	"testing"

	"github.com/openai/openai-go/v3/responses"

	"github.com/cubicle-dev/cubicle/openaicua"
)

func TestOutputParamSameJSON(t *testing.T) {
	o := &openaicua.Output{Type: "computer_call_output", CallID: "call_1",
		Output:                   openaicua.Screenshot{Type: "computer_screenshot", ImageURL: "data:image/png;base64,iVBORw0KGgo="},
		AcknowledgedSafetyChecks: []openaicua.SafetyCheck{{ID: "sc_1", Code: "c", Message: "m"}}}
	a, err := json.Marshal(OutputParam(o))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(o)
	var va, vb any
	json.Unmarshal(a, &va)
	json.Unmarshal(b, &vb)
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	if string(ja) != string(jb) {
		t.Errorf("SDK item JSON\n%s\ndiffers from\n%s", ja, jb)
	}
	tool, _ := json.Marshal(Tool())
	if string(tool) != `{"type":"computer"}` {
		t.Errorf("Tool() = %s", tool)
	}
}

func TestCalls(t *testing.T) {
	var r responses.Response
	err := json.Unmarshal([]byte(`{"id":"resp_1","object":"response","output":[
		{"type":"reasoning","id":"rs_1","summary":[]},
		{"type":"computer_call","id":"cu_1","call_id":"call_1","status":"completed",
		 "pending_safety_checks":[{"id":"sc_1","code":"x","message":"y"}],
		 "actions":[{"type":"click","button":"left","x":1,"y":2},{"type":"keypress","keys":["CTRL","A"]}]}]}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	calls, err := Calls(&r)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].CallID != "call_1" || len(calls[0].Actions) != 2 ||
		len(calls[0].PendingSafetyChecks) != 1 || calls[0].PendingSafetyChecks[0].ID != "sc_1" {
		t.Errorf("Calls = %+v, want call_1 with two actions and sc_1", calls)
	}
}
