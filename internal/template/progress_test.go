package template

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			g, w := "", ""
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d:\ngot:  %q\nwant: %q\n(run go test -update if the change is right)", path, i+1, g, w)
			}
		}
	}
}

// parseFixture runs the parser over a captured debootstrap stream.
func parseFixture(t *testing.T, name string) ([]Progress, *debootstrapParser) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []Progress
	p := newDebootstrapParser(func(pr Progress) { got = append(got, pr) })
	if err := p.run(f); err != nil {
		t.Fatal(err)
	}
	return got, p
}

func formatEvents(events []Progress) []byte {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "%s %d/%d %s\n", e.Phase, e.Done, e.Total, e.Message)
	}
	return []byte(b.String())
}

func TestDebootstrapProgressGolden(t *testing.T) {
	events, p := parseFixture(t, "debootstrap-minbase.fd3")
	golden(t, "debootstrap-minbase.golden", formatEvents(events))
	if err := p.err(); err != nil {
		t.Errorf("err() = %v for a successful run", err)
	}
}

func TestDebootstrapProgressCounts(t *testing.T) {
	events, _ := parseFixture(t, "debootstrap-minbase.fd3")
	// Phases only move forward.
	order := map[Phase]int{}
	for i, ph := range Phases() {
		order[ph] = i
	}
	for i := 1; i < len(events); i++ {
		if order[events[i].Phase] < order[events[i-1].Phase] {
			t.Fatalf("event %d goes back from %s to %s", i, events[i-1].Phase, events[i].Phase)
		}
	}
	last := map[Phase]Progress{}
	for _, e := range events {
		if e.Total > 0 && (e.Done < 0 || e.Done > e.Total) {
			t.Errorf("event %+v: done out of 0..total", e)
		}
		last[e.Phase] = e
	}
	// The captured run resolved 89 packages, extracted the 88 required
	// ones and installed all of them.
	want := map[Phase][2]int{
		PhaseIndex:    {100, 100},
		PhaseResolve:  {89, 89},
		PhaseDownload: {89, 89},
		PhaseExtract:  {88, 88},
		PhaseInstall:  {178, 178},
	}
	for ph, w := range want {
		got := last[ph]
		if got.Done != w[0] || got.Total != w[1] {
			t.Errorf("last %s report: %d/%d, want %d/%d", ph, got.Done, got.Total, w[0], w[1])
		}
	}
	if got := last[PhaseInstall].Message; got != "Base system installed successfully." {
		t.Errorf("last message = %q, want the success line", got)
	}
	if i := slices.IndexFunc(events, func(e Progress) bool { return e.Message == "Retrieving busybox 1:1.35.0-4+deb12u1+b1" }); i < 0 {
		t.Errorf("no event retrieving busybox with its version")
	}
}

func TestDebootstrapProgressError(t *testing.T) {
	events, p := parseFixture(t, "debootstrap-missing-package.fd3")
	golden(t, "debootstrap-missing-package.golden", formatEvents(events))
	err := p.err()
	if err == nil {
		t.Fatal("err() = nil, want the E: record")
	}
	if got, want := err.Error(), "Couldn't find these debs: nonexistent-pkg-xyz"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	if !errors.Is(err, desktop.ErrInvalid) {
		t.Errorf("a missing package is not ErrInvalid")
	}
	if desktop.Class(err) != desktop.ErrInvalid {
		t.Errorf("Class = %v, want ErrInvalid", desktop.Class(err))
	}
}

func TestDebootstrapProgressRecords(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []Progress
	}{
		{
			name:  "warning keeps the phase and counts",
			lines: []string{"P: 0 3 SIZEDEBS", "P: 3 3 SIZEDEBS", "P: 0 100 DOWNDEBS", "I: RETRIEVING", "IA: a", "IA: 1", "IF: Retrieving %s %s", "W: RETRYING", "WA: b", "WF: Retrying failed download of %s"},
			want: []Progress{
				{Phase: PhaseResolve, Done: 0, Total: 3, Message: "Finding package sizes"},
				{Phase: PhaseResolve, Done: 3, Total: 3, Message: "Finding package sizes"},
				{Phase: PhaseDownload, Done: 1, Total: 3, Message: "Retrieving a 1"},
				{Phase: PhaseDownload, Done: 1, Total: 3, Message: "warning: Retrying failed download of b"},
			},
		},
		{
			name:  "more configured than resolved is clamped",
			lines: []string{"P: 1 1 SIZEDEBS", "I: CONFIGURING", "IA: a", "IF: Configuring %s...", "I: CONFIGURING", "IA: a", "IF: Configuring %s..."},
			want: []Progress{
				{Phase: PhaseResolve, Done: 1, Total: 1, Message: "Finding package sizes"},
				{Phase: PhaseInstall, Done: 1, Total: 2, Message: "Configuring a..."},
				{Phase: PhaseInstall, Done: 1, Total: 2, Message: "Configuring a..."},
			},
		},
		{
			name:  "garbage is ignored",
			lines: []string{"", "hello", "P: x y", "P: -1 5 DOWNDEBS", "IA: stray", "IF: stray %s", "E", "P:"},
			want:  nil,
		},
		{
			name:  "index percentage",
			lines: []string{"P: 0 100 DOWNREL", "P: 0 200 DOWNPKGS", "P: 50 200", "P: 51 200", "P: 200 200 DOWNPKGS"},
			want: []Progress{
				{Phase: PhaseIndex, Done: 0, Total: 100},
				{Phase: PhaseIndex, Done: 25, Total: 100},
				{Phase: PhaseIndex, Done: 100, Total: 100},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []Progress
			p := newDebootstrapParser(func(pr Progress) { got = append(got, pr) })
			for _, l := range tc.lines {
				p.line(l)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("events:\ngot  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPrintfS(t *testing.T) {
	tests := []struct {
		format string
		args   []string
		want   string
	}{
		{"Retrieving %s %s", []string{"InRelease", ""}, "Retrieving InRelease"},
		{"100%% of %d", []string{"7"}, "100% of 7"},
		{"missing %s and %s", []string{"one"}, "missing one and"},
		{"key %s\\n   more", []string{"k"}, "key k more"},
		{"trailing %", nil, "trailing %"},
	}
	for _, tc := range tests {
		if got := printfS(tc.format, tc.args); got != tc.want {
			t.Errorf("printfS(%q, %q) = %q, want %q", tc.format, tc.args, got, tc.want)
		}
	}
}
