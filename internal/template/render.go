package template

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// RenderProgress returns a progress function that shows a build on w, one
// line per phase. On a terminal the phase's line is rewritten in place
// (with a bar, counts, percentage and what happens now) and stays when the
// next phase starts; elsewhere (a file, a pipe, a CI log) plain lines are
// written when a phase starts, at every tenth of it, and when it ends.
// The function may be called from several goroutines, one at a time.
func RenderProgress(w io.Writer) func(Progress) {
	r := &renderer{w: w}
	if fd, ok := terminalFD(w); ok {
		r.term = true
		r.width = 100
		if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil && ws.Col >= 40 {
			r.width = int(ws.Col)
		}
	}
	return r.render
}

func terminalFD(w io.Writer) (int, bool) {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return 0, false
	}
	return fd, true
}

type renderer struct {
	w     io.Writer
	term  bool
	width int // columns, on a terminal

	mu       sync.Mutex
	phase    Phase
	open     bool // a terminal line is being rewritten
	lastDone int  // plain: Done of the last line written
	lastTen  int  // plain: tenths of the phase written so far
	pending  *Progress
}

func (r *renderer) render(p Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.term {
		r.renderTerm(p)
	} else {
		r.renderPlain(p)
	}
}

func (r *renderer) renderTerm(p Progress) {
	if p.Phase != r.phase && r.open {
		io.WriteString(r.w, "\n")
		r.open = false
	}
	r.phase = p.Phase
	line := r.format(p, true)
	if n := utf8.RuneCountInString(line); n > r.width-1 {
		line = string([]rune(line)[:r.width-2]) + "…"
	}
	io.WriteString(r.w, "\r\x1b[K"+line)
	r.open = true
	if p.Phase == PhaseDone {
		io.WriteString(r.w, "\n")
		r.open = false
	}
}

func (r *renderer) renderPlain(p Progress) {
	newPhase := p.Phase != r.phase
	if newPhase && r.pending != nil {
		// The last report of the phase before says how it ended.
		r.writePlain(*r.pending)
	}
	r.pending = nil
	write := newPhase || strings.HasPrefix(p.Message, "warning: ")
	ten := 0
	if pct := p.Percent(); pct >= 0 {
		ten = pct / 10
	}
	switch {
	case write:
	case p.Total > 0 && p.Total <= 20 && p.Done != r.lastDone:
		write = true // few items (steps): each one is worth a line
	case p.Total > 20 && ten > r.lastTen:
		write = true
	}
	if newPhase {
		r.phase = p.Phase
		r.lastTen = ten
	}
	if write {
		r.writePlain(p)
		if ten > r.lastTen {
			r.lastTen = ten
		}
		return
	}
	r.pending = &p
}

func (r *renderer) writePlain(p Progress) {
	r.lastDone = p.Done
	io.WriteString(r.w, r.format(p, false)+"\n")
}

// format lays out one report: the phase, a bar on a terminal, the counts,
// the percentage and the message.
func (r *renderer) format(p Progress, bar bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s", p.Phase)
	pct := p.Percent()
	switch {
	case p.Phase == PhaseDone:
	case pct >= 0 && p.Phase == PhaseIndex:
		if bar {
			b.WriteString(" " + progressBar(pct, 20))
		}
		fmt.Fprintf(&b, " %9s %4d%%", "", pct)
	case pct >= 0:
		if bar {
			b.WriteString(" " + progressBar(pct, 20))
		}
		fmt.Fprintf(&b, " %9s %4d%%", fmt.Sprintf("%d/%d", min(p.Done, p.Total), p.Total), pct)
	case p.Done > 0:
		if bar {
			b.WriteString(" " + strings.Repeat(" ", 20))
		}
		fmt.Fprintf(&b, " %9d %5s", p.Done, "")
	default:
		if bar {
			b.WriteString(" " + strings.Repeat(" ", 20))
		}
		fmt.Fprintf(&b, " %9s %5s", "", "")
	}
	if p.Message != "" {
		b.WriteString("  " + p.Message)
	}
	return strings.TrimRight(b.String(), " ")
}

func progressBar(pct, width int) string {
	full := pct * width / 100
	return strings.Repeat("█", full) + strings.Repeat("░", width-full)
}
