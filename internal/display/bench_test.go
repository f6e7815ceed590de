package display

import (
	"os"
	"slices"
	"testing"
	"time"
)

// BenchmarkXvfbReady measures Start of a bare server: from spawning Xvfb
// until it completes an X handshake. Run with -benchtime=5x.
func BenchmarkXvfbReady(b *testing.B) {
	var took []time.Duration
	for b.Loop() {
		s, d := startFree(b, Config{Session: SessionNone})
		took = append(took, d)
		closeDesktop(b, s)
	}
	b.ReportMetric(p50ms(took), "p50_ms")
}

// BenchmarkSessionPanel measures an XFCE desktop on a home that has logged
// in before: Start (server, bus, session launched), and from the session's
// launch until the panel is mapped and a window manager runs. Run with
// -benchtime=5x.
func BenchmarkSessionPanel(b *testing.B) {
	needTools(b, "Xvfb", "dbus-daemon", "xfce4-session")
	home := tempHome(b, os.Getuid(), os.Getgid())
	run := func() (start, panel time.Duration) {
		s, d := startFree(b, Config{User: selfUser(home)})
		defer closeDesktop(b, s)
		t0 := time.Now()
		xc := xconn(b, s.cfg.Display)
		defer xc.Close()
		a := &atoms{xc: xc}
		waitFor(b, "the xfce4-panel window and a window manager", func() bool { return panelUp(xc, a) })
		return d, time.Since(t0)
	}
	run() // first login writes the settings into HOME
	var starts, panels, totals []time.Duration
	for b.Loop() {
		start, panel := run()
		starts, panels, totals = append(starts, start), append(panels, panel), append(totals, start+panel)
	}
	b.ReportMetric(p50ms(starts), "start_p50_ms")
	b.ReportMetric(p50ms(panels), "panel_after_start_p50_ms")
	b.ReportMetric(p50ms(totals), "panel_p50_ms")
}

func p50ms(d []time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return float64(d[len(d)/2].Microseconds()) / 1000
}
