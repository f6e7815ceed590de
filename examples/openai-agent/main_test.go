package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/cuatest"
)

var cubicleBinary string

func TestMain(m *testing.M) { os.Exit(cuatest.Main(m, &cubicleBinary)) }

// request is the part of a Responses API request the checks read.
type request struct {
	Model              string           `json:"model"`
	Tools              []map[string]any `json:"tools"`
	PreviousResponseID string           `json:"previous_response_id"`
	Input              json.RawMessage  `json:"input"`
}

// callOutput is a computer_call_output input item as the loop sent it.
type callOutput struct {
	Type   string `json:"type"`
	CallID string `json:"call_id"`
	Output struct {
		Type     string `json:"type"`
		ImageURL string `json:"image_url"`
	} `json:"output"`
	Acknowledged []struct {
		ID   string `json:"id"`
		Code string `json:"code"`
	} `json:"acknowledged_safety_checks"`
}

func outputs(t *testing.T, req request) []callOutput {
	t.Helper()
	var out []callOutput
	if err := json.Unmarshal(req.Input, &out); err != nil {
		t.Fatalf("input is not a list of items: %s", req.Input)
	}
	return out
}

// screenshotSize decodes the data URL of an output.
func screenshotSize(t *testing.T, o callOutput) (int, int) {
	t.Helper()
	data, ok := strings.CutPrefix(o.Output.ImageURL, "data:image/png;base64,")
	b, err := base64.StdEncoding.DecodeString(data)
	if !ok || err != nil || o.Output.Type != "computer_screenshot" {
		t.Fatalf("output of %s is not a PNG data URL screenshot", o.CallID)
	}
	size, _, ok := cuatest.ImageSize(b)
	if !ok {
		t.Fatalf("screenshot of %s does not decode", o.CallID)
	}
	return size.X, size.Y
}

type turn struct {
	check  func(t *testing.T, req request)
	output []any
}

// fakeModel is a Responses API endpoint that replays turns.
type fakeModel struct {
	t     *testing.T
	mu    sync.Mutex
	turns []turn
	n     int
}

func (f *fakeModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/responses" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		f.t.Errorf("request is not JSON: %v", err)
	}
	f.mu.Lock()
	i := f.n
	f.n++
	f.mu.Unlock()
	if i >= len(f.turns) {
		f.t.Errorf("request %d: the conversation has only %d turns", i+1, len(f.turns))
		http.Error(w, `{"error":{"message":"no more turns"}}`, http.StatusBadRequest)
		return
	}
	if c := f.turns[i].check; c != nil {
		c(f.t, req)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": fmt.Sprintf("resp_%d", i+1), "object": "response", "created_at": 0, "model": req.Model,
		"status": "completed", "output": f.turns[i].output, "parallel_tool_calls": false,
		"tool_choice": "auto", "tools": req.Tools,
	})
}

// TestRunAgainstFakeModel runs the loop end to end: a fake Responses API
// replays a conversation (a screenshot; a computer_call with a list of
// actions and a safety check; a final message) while the actions happen on
// a real desktop, and checks what the loop sent back.
func TestRunAgainstFakeModel(t *testing.T) {
	a := cuatest.StartAgent(t, cubicleBinary)
	x := cuatest.StartXterm(t, a.Sandbox, "openai-agent-xterm")
	w := x.Window
	cx, cy := (w.X+w.Width/2)*800/1024, (w.Y+w.Height/2)*600/768
	out := filepath.Join(x.Dir, "typed")
	cmd := fmt.Sprintf(`printf '\033]2;%%s\007' openai-agent-done; echo from-the-loop > %s`, out)

	model := &fakeModel{t: t, turns: []turn{
		{
			check: func(t *testing.T, req request) {
				if len(req.Tools) != 1 || req.Tools[0]["type"] != "computer" {
					t.Errorf("tools = %v, want the computer tool", req.Tools)
				}
			},
			output: []any{map[string]any{"type": "computer_call", "id": "cu_1", "call_id": "call_1", "status": "completed",
				"pending_safety_checks": []any{}, "actions": []any{map[string]any{"type": "screenshot"}}}},
		},
		{
			check: func(t *testing.T, req request) {
				if req.PreviousResponseID != "resp_1" {
					t.Errorf("previous_response_id = %q, want resp_1", req.PreviousResponseID)
				}
				outs := outputs(t, req)
				if len(outs) != 1 || outs[0].Type != "computer_call_output" || outs[0].CallID != "call_1" || len(outs[0].Acknowledged) != 0 {
					t.Fatalf("input = %+v, want one computer_call_output for call_1", outs)
				}
				if w, h := screenshotSize(t, outs[0]); w != 800 || h != 600 {
					t.Errorf("screenshot is %dx%d, want 800x600", w, h)
				}
			},
			output: []any{map[string]any{"type": "computer_call", "id": "cu_2", "call_id": "call_2", "status": "completed",
				"pending_safety_checks": []any{map[string]any{"id": "sc_1", "code": "irrelevant_domain", "message": "check"}},
				"actions": []any{
					map[string]any{"type": "click", "button": "left", "x": cx, "y": cy},
					map[string]any{"type": "type", "text": cmd},
					map[string]any{"type": "keypress", "keys": []string{"ENTER"}},
					map[string]any{"type": "wait"},
				}}},
		},
		{
			check: func(t *testing.T, req request) {
				outs := outputs(t, req)
				if len(outs) != 1 || outs[0].CallID != "call_2" {
					t.Fatalf("input = %+v, want one computer_call_output for call_2", outs)
				}
				if ack := outs[0].Acknowledged; len(ack) != 1 || ack[0].ID != "sc_1" || ack[0].Code != "irrelevant_domain" {
					t.Errorf("acknowledged_safety_checks = %+v, want sc_1", ack)
				}
				if w, h := screenshotSize(t, outs[0]); w != 800 || h != 600 {
					t.Errorf("screenshot is %dx%d, want 800x600", w, h)
				}
			},
			output: []any{map[string]any{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
				"content": []any{map[string]any{"type": "output_text", "text": "Done.", "annotations": []any{}}}}},
		},
	}}
	srv := httptest.NewServer(model)
	defer srv.Close()
	t.Setenv("OPENAI_BASE_URL", srv.URL+"/v1")
	t.Setenv("OPENAI_API_KEY", "test-key")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var prompt strings.Builder
	err := run(ctx, config{
		Task: "write a file from the terminal", AgentURL: a.URL, Token: a.Token, Model: "gpt-5.4",
		Display: desktop.Size{Width: 800, Height: 600}, MaxTurns: 10,
		Prompt: &prompt, In: strings.NewReader("y\n"),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if model.n != len(model.turns) {
		t.Errorf("the loop made %d requests, want %d", model.n, len(model.turns))
	}
	if !strings.Contains(prompt.String(), "sc_1") {
		t.Errorf("the safety check was not shown: %q", prompt.String())
	}
	b, _ := os.ReadFile(out)
	if string(b) != "from-the-loop\n" {
		t.Errorf("file = %q, want the typed command's output", b)
	}
	if got := cuatest.Title(ctx, a.Sandbox, w.ID); got != "openai-agent-done" {
		t.Errorf("window title = %q, want openai-agent-done", got)
	}
}

// TestRefusedSafetyCheck: a refused check stops the loop with a clear error
// and nothing runs.
func TestRefusedSafetyCheck(t *testing.T) {
	a := cuatest.StartAgent(t, cubicleBinary)
	model := &fakeModel{t: t, turns: []turn{{
		output: []any{map[string]any{"type": "computer_call", "id": "cu_1", "call_id": "call_1", "status": "completed",
			"pending_safety_checks": []any{map[string]any{"id": "sc_9", "code": "malicious_instructions"}},
			"actions":               []any{map[string]any{"type": "move", "x": 5, "y": 5}}}},
	}}}
	srv := httptest.NewServer(model)
	defer srv.Close()
	t.Setenv("OPENAI_BASE_URL", srv.URL+"/v1")
	t.Setenv("OPENAI_API_KEY", "test-key")
	ctx := context.Background()
	if err := a.Sandbox.MoveMouse(ctx, 100, 100); err != nil {
		t.Fatal(err)
	}
	err := run(ctx, config{Task: "t", AgentURL: a.URL, Token: a.Token, Model: "gpt-5.4", MaxTurns: 3,
		Prompt: io.Discard, In: strings.NewReader("n\n"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "sc_9") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("run = %v, want an error about the refused check sc_9", err)
	}
	if p, err := a.Sandbox.GetCursorPosition(ctx); err != nil || p != (desktop.Point{X: 100, Y: 100}) {
		t.Errorf("pointer at %v, %v; want it unmoved at (100, 100)", p, err)
	}
}
