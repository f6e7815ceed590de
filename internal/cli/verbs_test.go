package cli

import (
	"bytes"
	"image"
	_ "image/jpeg" // decode jpeg screenshots
	_ "image/png"  // decode png screenshots
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/client/clienttest"
)

func TestVerbsSend(t *testing.T) {
	const act = "/v1/action"
	tests := []struct {
		name   string
		before [][]string // runs first; their requests are not compared
		args   []string
		stdin  string
		want   []sent
		stdout string
	}{
		{name: "click", args: []string{"click", "10", "20"},
			want: []sent{{"POST", act, "", `{"type":"click","x":10,"y":20}`}}},
		{name: "click here", args: []string{"click"},
			want: []sent{{"POST", act, "", `{"type":"click"}`}}},
		{name: "click double right with modifiers", args: []string{"click", "10", "20", "--button", "RIGHT", "--double", "--modifiers", "ctrl,shift"},
			want: []sent{{"POST", act, "", `{"type":"click","x":10,"y":20,"button":"right","count":2,"modifiers":["ctrl","shift"]}`}}},
		{name: "click triple", args: []string{"click", "--triple", "1", "2"},
			want: []sent{{"POST", act, "", `{"type":"click","x":1,"y":2,"count":3}`}}},
		{name: "click count", args: []string{"click", "3", "4", "--count=5", "--modifiers", "ctrl+alt"},
			want: []sent{{"POST", act, "", `{"type":"click","x":3,"y":4,"count":5,"modifiers":["ctrl","alt"]}`}}},
		{name: "move", args: []string{"move", "5", "6"},
			want: []sent{{"POST", act, "", `{"type":"move","x":5,"y":6}`}}},
		{name: "mousedown", args: []string{"mousedown"},
			want: []sent{{"POST", act, "", `{"type":"mouse_down"}`}}},
		{name: "mousedown at", args: []string{"mousedown", "7", "8", "--button", "middle"},
			want: []sent{{"POST", act, "", `{"type":"mouse_down","x":7,"y":8,"button":"middle"}`}}},
		{name: "mouseup", args: []string{"mouseup", "--button", "right"},
			want: []sent{{"POST", act, "", `{"type":"mouse_up","button":"right"}`}}},
		{name: "drag", args: []string{"drag", "1", "2", "30", "40", "50", "60", "--modifiers", "shift"},
			want: []sent{{"POST", act, "", `{"type":"drag","path":[{"x":1,"y":2},{"x":30,"y":40},{"x":50,"y":60}],"modifiers":["shift"]}`}}},
		{name: "scroll down", args: []string{"scroll", "down"},
			want: []sent{{"POST", act, "", `{"type":"scroll","dy":1}`}}},
		{name: "scroll up", args: []string{"scroll", "up", "3"},
			want: []sent{{"POST", act, "", `{"type":"scroll","dy":-3}`}}},
		{name: "scroll left", args: []string{"scroll", "left", "2"},
			want: []sent{{"POST", act, "", `{"type":"scroll","dx":-2}`}}},
		{name: "scroll right", args: []string{"scroll", "RIGHT"},
			want: []sent{{"POST", act, "", `{"type":"scroll","dx":1}`}}},
		{name: "type", args: []string{"type", "hello world"},
			want: []sent{{"POST", act, "", `{"type":"type","text":"hello world"}`}}},
		{name: "type dash text", args: []string{"type", "--", "--not-a-flag"},
			want: []sent{{"POST", act, "", `{"type":"type","text":"--not-a-flag"}`}}},
		{name: "type stdin paste", args: []string{"type", "--paste", "-"}, stdin: "from stdin ✓\n",
			want: []sent{{"POST", act, "", `{"type":"type","text":"from stdin ✓\n","paste":true}`}}},
		{name: "key", args: []string{"key", "ctrl+l", "Return"},
			want: []sent{{"POST", "/v1/actions", "", `{"actions":[{"type":"key","keys":["ctrl","l"]},{"type":"key","keys":["Return"]}]}`}}},
		{name: "key plus", args: []string{"key", "ctrl++"},
			want: []sent{{"POST", "/v1/actions", "", `{"actions":[{"type":"key","keys":["ctrl","plus"]}]}`}}},
		{name: "cursor", before: [][]string{{"move", "7", "9"}}, args: []string{"cursor"},
			want: []sent{{"GET", "/v1/cursor", "", ""}}, stdout: "7 9\n"},
		{name: "screen", args: []string{"screen"},
			want: []sent{{"GET", "/v1/screen", "", ""}}, stdout: "320x240\n"},
		{name: "windows filtered", args: []string{"windows", "--class", "firefox-esr", "--title", "Mozilla"},
			want: []sent{{"GET", "/v1/windows", "class=firefox-esr&title=Mozilla", ""}},
			stdout: "ID        TITLE            CLASS        PID  GEOMETRY      FOCUSED\n" +
				"20971527  Mozilla Firefox  firefox-esr  654  1024x740+0+0  no\n"},
		{name: "window-title", args: []string{"window-title", "20971527"},
			want: []sent{{"GET", "/v1/windows/20971527", "", ""}}, stdout: "Mozilla Firefox\n"},
		{name: "window-title hex", args: []string{"window-title", "0x1400007"},
			want: []sent{{"GET", "/v1/windows/20971527", "", ""}}, stdout: "Mozilla Firefox\n"},
		{name: "focus", args: []string{"focus", "20971527"},
			want: []sent{{"POST", "/v1/windows/20971527/focus", "", ""}}},
		{name: "launch", args: []string{"launch", "firefox-esr", "https://example.com/?a=1&b=2"},
			want:   []sent{{"POST", "/v1/launch", "", `{"app":"firefox-esr","uri":"https://example.com/?a=1&b=2"}`}},
			stdout: "1000\n"},
		{name: "launch command", args: []string{"launch", "--command", "--", "xterm", "-e", "top -d 1; echo $HOME"},
			want:   []sent{{"POST", "/v1/launch", "", `{"command":["xterm","-e","top -d 1; echo $HOME"]}`}},
			stdout: "1000\n"},
		{name: "open", args: []string{"open", "/tmp/a file.txt"},
			want: []sent{{"POST", "/v1/open", "", `{"target":"/tmp/a file.txt"}`}}, stdout: "1000\n"},
		{name: "clipboard set", args: []string{"clipboard", "set", "some text"},
			want: []sent{{"PUT", "/v1/clipboard", "", `{"text":"some text"}`}}},
		{name: "clipboard set stdin", args: []string{"clipboard", "set", "-"}, stdin: "line 1\nline 2\n",
			want: []sent{{"PUT", "/v1/clipboard", "", `{"text":"line 1\nline 2\n"}`}}},
		{name: "clipboard", before: [][]string{{"clipboard", "set", "copied €"}}, args: []string{"clipboard"},
			want: []sent{{"GET", "/v1/clipboard", "", ""}}, stdout: "copied €"},
		{name: "wait", args: []string{"wait", "25"},
			want: []sent{{"POST", act, "", `{"type":"wait","duration_ms":25}`}}},
		{name: "wait duration", args: []string{"wait", "0.0101s"},
			want: []sent{{"POST", act, "", `{"type":"wait","duration_ms":11}`}}},
		{name: "ready", args: []string{"ready"},
			want:   []sent{{"GET", "/v1/ready", "", ""}},
			stdout: "ready: 320x240\n  xvfb     running  pid 101  restarts 0\n  session  running  pid 102  restarts 0\n"},
		{name: "ready wait", args: []string{"ready", "--wait", "5s"},
			want:   []sent{{"GET", "/v1/ready", "wait=5s", ""}},
			stdout: "ready: 320x240\n  xvfb     running  pid 101  restarts 0\n  session  running  pid 102  restarts 0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startAgent(t, clienttest.Options{})
			for _, b := range tt.before {
				if r := runCLI(t, a, "", b...); r.code != 0 {
					t.Fatalf("cubicle %q: exit %d: %s", b, r.code, r.stderr)
				}
			}
			a.ClearRequests()
			r := runCLI(t, a, tt.stdin, tt.args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("cubicle %q: exit %d, stderr:\n%s", tt.args, r.code, r.stderr)
			}
			want := make([]sent, len(tt.want))
			for i, w := range tt.want {
				w.Body = canonJSON(t, []byte(w.Body))
				want[i] = w
			}
			if diff := cmp.Diff(want, sentBy(t, a)); diff != "" {
				t.Errorf("cubicle %q sent (-want +got):\n%s", tt.args, diff)
			}
			if r.stdout != tt.stdout {
				t.Errorf("cubicle %q printed %q, want %q", tt.args, r.stdout, tt.stdout)
			}
		})
	}
}

func decodeImage(t *testing.T, data []byte) (format string, w, h int) {
	t.Helper()
	cfg, f, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode %d bytes: %v", len(data), err)
	}
	return f, cfg.Width, cfg.Height
}

func TestScreenshotVerb(t *testing.T) {
	a := startAgent(t, clienttest.Options{})
	dir := t.TempDir()
	tests := []struct {
		name      string
		args      []string
		file      string // the file written, relative to dir
		wantQuery string
		want      string // format and size of the picture
	}{
		{"png", []string{"-o", "s.png"}, "s.png", "", "png 320x240"},
		{"jpeg from the name", []string{"-o", "s.jpg", "--quality", "60", "--width", "160"}, "s.jpg", "format=jpeg&quality=60&width=160", "jpeg 160x120"},
		{"region with cursor", []string{"--output=r.png", "--region", "10,20,100,50", "--cursor", "--format", "png"}, "r.png", "cursor=true&format=png&region=10%2C20%2C100%2C50", "png 100x50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.ClearRequests()
			args := append([]string{"screenshot"}, tt.args...)
			for i, s := range args {
				if strings.HasSuffix(s, ".png") || strings.HasSuffix(s, ".jpg") {
					prefix, name, _ := strings.Cut(s, "=")
					if name == "" {
						name, prefix = prefix, ""
					} else {
						prefix += "="
					}
					args[i] = prefix + filepath.Join(dir, name)
				}
			}
			r := runCLI(t, a, "", args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			data, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			f, w, h := decodeImage(t, data)
			if got := f + " " + strconv.Itoa(w) + "x" + strconv.Itoa(h); got != tt.want {
				t.Errorf("the file holds %s, want %s", got, tt.want)
			}
			wantOut := filepath.Join(dir, tt.file) + ": " + tt.want + ", " + strconv.Itoa(len(data)) + " bytes\n"
			if r.stdout != wantOut {
				t.Errorf("printed %q, want %q", r.stdout, wantOut)
			}
			if reqs := a.Requests(); len(reqs) != 1 || reqs[0].Query.Encode() != tt.wantQuery {
				t.Errorf("sent %v, want one request with query %q", reqs, tt.wantQuery)
			}
		})
	}

	t.Run("stdout", func(t *testing.T) {
		r := runCLI(t, a, "", "screenshot", "-o", "-", "--format", "jpeg")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if f, w, h := decodeImage(t, []byte(r.stdout)); f != "jpeg" || w != 320 || h != 240 {
			t.Errorf("standard output holds %s %dx%d, want jpeg 320x240", f, w, h)
		}
	})

	t.Run("default name", func(t *testing.T) {
		t.Chdir(t.TempDir())
		r := runCLI(t, a, "", "screenshot")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if _, err := os.Stat("screenshot.png"); err != nil || !strings.HasPrefix(r.stdout, "screenshot.png: png 320x240, ") {
			t.Errorf("printed %q (%v), want screenshot.png written", r.stdout, err)
		}
	})
}
