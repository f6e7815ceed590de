package template

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// buildEvents is what a small build reports: the captured debootstrap run,
// then steps, finish and done as the builder reports them.
func buildEvents(t *testing.T) []Progress {
	events, _ := parseFixture(t, "debootstrap-minbase.fd3")
	return append(events,
		Progress{Phase: PhaseSteps, Done: 0, Total: 3, Message: "preparing the chroot"},
		Progress{Phase: PhaseSteps, Done: 0, Total: 3, Message: "create user user (uid 1000)"},
		Progress{Phase: PhaseSteps, Done: 1, Total: 3, Message: "run: apt-get install -y python3"},
		Progress{Phase: PhaseSteps, Done: 1, Total: 3, Message: "Reading package lists..."},
		Progress{Phase: PhaseSteps, Done: 2, Total: 3, Message: "write /etc/x"},
		Progress{Phase: PhaseSteps, Done: 3, Total: 3, Message: "steps done"},
		Progress{Phase: PhaseFinish, Message: "cleaning package caches"},
		Progress{Phase: PhaseFinish, Message: "measuring the root filesystem"},
		Progress{Phase: PhaseDone, Done: 1, Total: 1, Message: "tiny@0123456789ab  92 packages  96 MiB  41s"},
	)
}

func TestRenderPlainGolden(t *testing.T) {
	var buf bytes.Buffer
	render := RenderProgress(&buf)
	for _, e := range buildEvents(t) {
		render(e)
	}
	golden(t, "render-plain.golden", buf.Bytes())
	if strings.Contains(buf.String(), "\r") || strings.Contains(buf.String(), "\x1b") {
		t.Errorf("plain output has terminal controls")
	}
	// One line per phase start, per tenth of a long phase, per step: far
	// fewer lines than reports.
	if lines := strings.Count(buf.String(), "\n"); lines > 90 {
		t.Errorf("plain output has %d lines, want at most 90", lines)
	}
}

func TestRenderTerminalGolden(t *testing.T) {
	var buf bytes.Buffer
	r := &renderer{w: &buf, term: true, width: 80}
	for _, e := range buildEvents(t) {
		r.render(e)
	}
	out := buf.String()
	// Each phase ends up as one line on the screen.
	if got, want := strings.Count(out, "\n"), 8; got != want {
		t.Errorf("terminal output has %d newlines, want %d (one per phase)", got, want)
	}
	for _, l := range strings.Split(out, "\r\x1b[K") {
		l = strings.TrimSuffix(l, "\n")
		if n := len([]rune(l)); n > 79 {
			t.Errorf("line of %d columns, wider than the terminal: %q", n, l)
		}
	}
	// The golden file keeps what the screen shows at the end, one line
	// per phase: the last rewrite of each line.
	var screen strings.Builder
	for _, line := range strings.SplitAfter(out, "\n") {
		parts := strings.Split(line, "\r\x1b[K")
		screen.WriteString(parts[len(parts)-1])
	}
	golden(t, "render-terminal.golden", []byte(screen.String()))
}

func TestRenderDetectsNonTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	render := RenderProgress(f)
	render(Progress{Phase: PhaseDownload, Done: 1, Total: 10, Message: "Retrieving a 1"})
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), "download       1/10   10%  Retrieving a 1\n"; got != want {
		t.Errorf("output to a file = %q, want %q", got, want)
	}
}

func TestPercent(t *testing.T) {
	tests := []struct {
		p    Progress
		want int
	}{
		{Progress{Done: 0, Total: 0}, -1},
		{Progress{Done: 5, Total: 10}, 50},
		{Progress{Done: 11, Total: 10}, 100},
		{Progress{Done: -1, Total: 10}, 0},
	}
	for _, tc := range tests {
		if got := tc.p.Percent(); got != tc.want {
			t.Errorf("%+v.Percent() = %d, want %d", tc.p, got, tc.want)
		}
	}
}
