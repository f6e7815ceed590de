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

	"github.com/cubicle-dev/cubicle/claudetool"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/cuatest"
)

var cubicleBinary string

func TestMain(m *testing.M) { os.Exit(cuatest.Main(m, &cubicleBinary)) }

// turn is one recorded exchange: check looks at the request the loop sent,
// reply is the model's answer.
type turn struct {
	check func(t *testing.T, req request)
	reply map[string]any
}

// request is the part of a Messages API request the checks read.
type request struct {
	Model    string `json:"model"`
	Tools    []map[string]any
	Messages []struct {
		Role    string            `json:"role"`
		Content []json.RawMessage `json:"content"`
	} `json:"messages"`
	beta string
}

// toolResult is a tool_result block as the loop sent it.
type toolResult struct {
	Type      string `json:"type"`
	ToolUseID string `json:"tool_use_id"`
	IsError   bool   `json:"is_error"`
	Content   []struct {
		Type   string `json:"type"`
		Text   string `json:"text"`
		Source struct {
			Type      string `json:"type"`
			MediaType string `json:"media_type"`
			Data      string `json:"data"`
		} `json:"source"`
	} `json:"content"`
}

// lastResults returns the tool_result blocks of the request's last message.
func lastResults(t *testing.T, req request) []toolResult {
	t.Helper()
	m := req.Messages[len(req.Messages)-1]
	if m.Role != "user" {
		t.Fatalf("last message is from %q, want user", m.Role)
	}
	var out []toolResult
	for _, c := range m.Content {
		var r toolResult
		if err := json.Unmarshal(c, &r); err != nil || r.Type != "tool_result" {
			t.Fatalf("block %s is not a tool_result", c)
		}
		out = append(out, r)
	}
	return out
}

// imageSize returns the size of a result's image, checking its encoding.
func imageSize(t *testing.T, r toolResult) (int, int) {
	t.Helper()
	for _, c := range r.Content {
		if c.Type != "image" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(c.Source.Data)
		if err != nil || c.Source.Type != "base64" || c.Source.MediaType != "image/png" {
			t.Fatalf("image of %s is not base64 PNG: %v", r.ToolUseID, err)
		}
		size, _, ok := cuatest.ImageSize(b)
		if !ok {
			t.Fatalf("image of %s does not decode", r.ToolUseID)
		}
		return size.X, size.Y
	}
	return 0, 0
}

// fakeModel is a Messages API endpoint that replays turns.
type fakeModel struct {
	t     *testing.T
	mu    sync.Mutex
	turns []turn
	n     int
}

func (f *fakeModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		f.t.Errorf("request is not JSON: %v", err)
	}
	req.beta = r.Header.Get("Anthropic-Beta")
	f.mu.Lock()
	i := f.n
	f.n++
	f.mu.Unlock()
	if i >= len(f.turns) {
		f.t.Errorf("request %d: the conversation has only %d turns", i+1, len(f.turns))
		http.Error(w, `{"type":"error","error":{"type":"invalid_request_error","message":"no more turns"}}`, http.StatusBadRequest)
		return
	}
	if c := f.turns[i].check; c != nil {
		c(f.t, req)
	}
	reply := f.turns[i].reply
	reply["id"] = fmt.Sprintf("msg_%d", i+1)
	reply["type"] = "message"
	reply["role"] = "assistant"
	reply["model"] = req.Model
	reply["usage"] = map[string]any{"input_tokens": 10, "output_tokens": 10}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(reply)
}

func toolUse(id string, input map[string]any) map[string]any {
	return map[string]any{"type": "tool_use", "id": id, "name": "computer", "input": input}
}

// TestRunAgainstFakeModel runs the loop end to end: a fake Messages API
// replays a conversation (a screenshot; a turn of a click, typing and a key;
// a zoom; the end) while the actions happen on a real desktop, and checks
// what the loop sent back.
func TestRunAgainstFakeModel(t *testing.T) {
	a := cuatest.StartAgent(t, cubicleBinary)
	x := cuatest.StartXterm(t, a.Sandbox, "claude-agent-xterm")
	sc := scaleTo(desktop.Size{Width: 1024, Height: 768}, desktop.Size{Width: 800, Height: 600})
	w := x.Window
	cx, cy := sc(w.X+w.Width/2, w.Y+w.Height/2)
	out := filepath.Join(x.Dir, "typed")
	cmd := fmt.Sprintf(`printf '\033]2;%%s\007' claude-agent-done; echo from-the-loop > %s`, out)

	model := &fakeModel{t: t, turns: []turn{
		{
			check: func(t *testing.T, req request) {
				if len(req.Tools) != 1 || req.Tools[0]["type"] != "computer_20251124" || req.Tools[0]["display_width_px"] != 800.0 ||
					req.Tools[0]["display_height_px"] != 600.0 || req.Tools[0]["enable_zoom"] != true {
					t.Errorf("tools = %v, want the computer_20251124 tool at 800x600 with zoom", req.Tools)
				}
				if !strings.Contains(req.beta, claudetool.Computer20251124.Beta()) {
					t.Errorf("anthropic-beta = %q, want %s", req.beta, claudetool.Computer20251124.Beta())
				}
			},
			reply: map[string]any{"stop_reason": "tool_use", "content": []any{
				map[string]any{"type": "text", "text": "Let me look at the screen."},
				toolUse("toolu_1", map[string]any{"action": "screenshot"}),
			}},
		},
		{
			check: func(t *testing.T, req request) {
				rs := lastResults(t, req)
				if len(rs) != 1 || rs[0].ToolUseID != "toolu_1" || rs[0].IsError {
					t.Fatalf("results = %+v, want one for toolu_1", rs)
				}
				if w, h := imageSize(t, rs[0]); w != 800 || h != 600 {
					t.Errorf("screenshot is %dx%d, want 800x600", w, h)
				}
			},
			reply: map[string]any{"stop_reason": "tool_use", "content": []any{
				toolUse("toolu_2", map[string]any{"action": "left_click", "coordinate": []int{cx, cy}}),
				toolUse("toolu_3", map[string]any{"action": "type", "text": cmd}),
				toolUse("toolu_4", map[string]any{"action": "key", "text": "Return"}),
			}},
		},
		{
			check: func(t *testing.T, req request) {
				rs := lastResults(t, req)
				if len(rs) != 3 {
					t.Fatalf("got %d results, want 3", len(rs))
				}
				for i, r := range rs {
					if r.ToolUseID != fmt.Sprintf("toolu_%d", i+2) || r.IsError {
						t.Errorf("result %d = %+v", i, r)
					}
				}
				if w, h := imageSize(t, rs[0]); w != 0 || h != 0 {
					t.Errorf("the first result of the turn has an image; only the last should")
				}
				if w, h := imageSize(t, rs[2]); w != 800 || h != 600 {
					t.Errorf("screenshot after the turn is %dx%d, want 800x600", w, h)
				}
			},
			reply: map[string]any{"stop_reason": "tool_use", "content": []any{
				toolUse("toolu_5", map[string]any{"action": "zoom", "region": []int{0, 0, 400, 300}}),
			}},
		},
		{
			check: func(t *testing.T, req request) {
				rs := lastResults(t, req)
				if len(rs) != 1 || rs[0].ToolUseID != "toolu_5" || rs[0].IsError {
					t.Fatalf("results = %+v, want one for toolu_5", rs)
				}
				// 400x300 on the display is 512x384 on the screen, at full
				// resolution.
				if w, h := imageSize(t, rs[0]); w != 512 || h != 384 {
					t.Errorf("zoom is %dx%d, want 512x384", w, h)
				}
			},
			reply: map[string]any{"stop_reason": "end_turn", "content": []any{
				map[string]any{"type": "text", "text": "Done."},
			}},
		},
	}}
	srv := httptest.NewServer(model)
	defer srv.Close()
	t.Setenv("ANTHROPIC_BASE_URL", srv.URL)
	t.Setenv("ANTHROPIC_API_KEY", "test-key")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := run(ctx, config{
		Task: "write a file from the terminal", AgentURL: a.URL, Token: a.Token,
		Model: "claude-sonnet-4-6", Version: claudetool.Computer20251124, Display: desktop.Size{Width: 800, Height: 600},
		MaxTurns: 10, MaxTokens: 1024, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if model.n != len(model.turns) {
		t.Errorf("the loop made %d requests, want %d", model.n, len(model.turns))
	}
	b, _ := os.ReadFile(out)
	if string(b) != "from-the-loop\n" {
		t.Errorf("file = %q, want the typed command's output", b)
	}
	if got := cuatest.Title(ctx, a.Sandbox, w.ID); got != "claude-agent-done" {
		t.Errorf("window title = %q, want claude-agent-done", got)
	}
}

// scaleTo maps screen coordinates to a display, as the tool does.
func scaleTo(screen, display desktop.Size) func(x, y int) (int, int) {
	return func(x, y int) (int, int) {
		return (x*display.Width + screen.Width/2) / screen.Width, (y*display.Height + screen.Height/2) / screen.Height
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  config
		want string
	}{
		{config{MaxTurns: 1, MaxTokens: 1, AgentURL: "x"}, "no task"},
		{config{Task: "t", MaxTurns: 1, MaxTokens: 1}, "CUBICLE_API_KEY"},
		{config{Task: "t", AgentURL: "x"}, "must be positive"},
	} {
		if err := c.cfg.validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("validate(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}
