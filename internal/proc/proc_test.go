package proc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runAll starts o, runs it to its end and returns its output by stream.
func runAll(t *testing.T, o Options, during func(p *Proc)) (map[Stream]string, End) {
	t.Helper()
	p, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	rd := p.Attach(false)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(0) }()
	if during != nil {
		during(p)
	}
	out := map[Stream]string{}
	for {
		b := p.Next(rd)
		for _, c := range b.Chunks {
			out[c.Stream] += string(c.Data)
		}
		if b.Ended {
			<-done
			p.Detach(rd)
			return out, b.End
		}
		if len(b.Chunks) == 0 {
			<-b.Changed
		}
	}
}

func TestPipes(t *testing.T) {
	out, end := runAll(t, Options{Path: "/bin/sh", Args: []string{"sh", "-c", "echo out; echo err >&2; exit 2"}}, nil)
	if out[Stdout] != "out\n" || out[Stderr] != "err\n" || out[PTY] != "" {
		t.Errorf("output %q", out)
	}
	if end.ExitCode != 2 || !end.Exited || end.Status != "exit status 2" || end.Error != "exit status 2" {
		t.Errorf("end %+v", end)
	}
}

func TestTerminal(t *testing.T) {
	o := Options{Path: "/bin/sh", Args: []string{"sh", "-c", "stty size; read x; stty size; echo $x"}, Terminal: &Size{Cols: 90, Rows: 20}}
	out, end := runAll(t, o, func(p *Proc) {
		if err := p.Resize(Size{Cols: 91, Rows: 21}); err != nil {
			t.Errorf("Resize: %v", err)
		}
		if err := p.WriteStdin(context.Background(), []byte("line\n"), false); err != nil {
			t.Errorf("WriteStdin: %v", err)
		}
	})
	got := strings.ReplaceAll(out[PTY], "\r\n", "\n")
	if !strings.Contains(got, "21 91\nline\n") || out[Stdout] != "" || end.ExitCode != 0 {
		t.Errorf("terminal output %q, end %+v", got, end)
	}
}

func TestNoTerminal(t *testing.T) {
	p, err := Start(Options{Path: "/bin/true", Args: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Run(0)
	if err := p.Resize(Size{Cols: 1, Rows: 1}); !errors.Is(err, ErrNoTerminal) {
		t.Errorf("Resize without a terminal: %v", err)
	}
	if err := p.WriteStdin(context.Background(), []byte("x"), false); !errors.Is(err, ErrNoStdin) {
		t.Errorf("WriteStdin without stdin: %v", err)
	}
	if err := p.Signal(unix.SIGTERM); !errors.Is(err, ErrEnded) {
		t.Errorf("Signal after the end: %v", err)
	}
}

func TestTimeoutKillsGroup(t *testing.T) {
	// The child of the shell holds the output open; the kill takes the
	// whole group, so the end comes without waiting for the grace period.
	p, err := Start(Options{Path: "/bin/sh", Args: []string{"sh", "-c", "sleep 100 & sleep 100"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Run(200 * time.Millisecond)
	end := p.Next(NewReader()).End
	if !end.TimedOut || end.Signal != "SIGKILL" || end.Exited {
		t.Errorf("end %+v, want killed by the timeout", end)
	}
	// The orphaned sleep is a zombie until its new parent reaps it.
	for unix.Kill(-p.Pid(), 0) == nil {
		if time.Since(start) > 30*time.Second {
			t.Fatal("the process group outlived the kill")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartFailure(t *testing.T) {
	if _, err := Start(Options{Path: "/no/such/program", Args: []string{"x"}}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Start of a missing program: %v, want ENOENT", err)
	}
}
