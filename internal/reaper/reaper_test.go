package reaper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The test process is a child subreaper for all tests of this package, so
// orphans of the shells the tests start come back to it.
func TestMain(m *testing.M) {
	if err := EnableSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestParseStat(t *testing.T) {
	tail := strings.Repeat(" 0", 17) + " 4242 0 0"
	tests := []struct {
		name string
		in   string
		want stat
		err  bool
	}{
		{name: "plain", in: "123 (sleep) Z 45" + tail, want: stat{pid: 123, state: 'Z', ppid: 45, start: 4242}},
		{name: "name with spaces and parens", in: "7 (a) b) (c) S 1" + tail, want: stat{pid: 7, state: 'S', ppid: 1, start: 4242}},
		{name: "no name", in: "7 S 1" + tail, err: true},
		{name: "short", in: "7 (x) S 1 0 0", err: true},
		{name: "bad ppid", in: "7 (x) S x" + tail, err: true},
		{name: "empty", in: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if tt.err {
				if err == nil {
					t.Fatalf("parseStat(%q) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseStat(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(stat{})); diff != "" {
				t.Errorf("parseStat(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestSubreaperEnabled(t *testing.T) {
	got, err := IsSubreaper()
	if err != nil {
		t.Fatal(err)
	}
	if !got {
		t.Errorf("IsSubreaper() = false after EnableSubreaper, want true")
	}
	if IsInit() {
		t.Errorf("IsInit() = true in a test process, want false")
	}
}

// runReaper runs r until the test ends.
func runReaper(t *testing.T, r *Reaper) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestReapsOrphans(t *testing.T) {
	r := New(nil)
	runReaper(t, r)

	// Two orphans block on a pipe we hold, so they are certainly alive and
	// re-parented when we look, and exit when we close it.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	cmd := exec.Command("sh", "-c", `cat <&3 >/dev/null 3<&- & echo $!; cat <&3 >/dev/null 3<&- & echo $!; exit 0`)
	cmd.ExtraFiles = []*os.File{pr}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(cmd); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			t.Fatalf("shell printed %q, want a pid", sc.Text())
		}
		pids = append(pids, pid)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("shell: %v", err)
	}
	if len(pids) != 2 {
		t.Fatalf("got %d orphan pids, want 2", len(pids))
	}

	self := os.Getpid()
	for _, pid := range pids {
		st, ok, err := readStat(pid)
		if !ok {
			t.Fatalf("orphan %d is gone before its pipe closed: %v", pid, err)
		}
		if st.ppid != self {
			t.Errorf("orphan %d has parent %d, want the subreaper %d", pid, st.ppid, self)
		}
	}
	pw.Close()
	for _, pid := range pids {
		waitFor(t, fmt.Sprintf("orphan %d to be reaped", pid), func() bool {
			_, ok, _ := readStat(pid)
			return !ok
		})
	}
	waitFor(t, "no zombie children", func() bool {
		z, err := zombieChildren(self)
		return err == nil && len(z) == 0
	})
}

func TestStartKeepsExitStatus(t *testing.T) {
	r := New(nil)
	r.interval = time.Millisecond // sweep all the time, to meet every race
	runReaper(t, r)

	// Orphans keep arriving, so SIGCHLD-driven sweeps run throughout.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			cmd := exec.Command("sh", "-c", "true & exit 0")
			if err := r.Start(cmd); err == nil {
				cmd.Wait()
			}
		}
	}()
	stopOrphans := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopOrphans()

	const workers, runs = 2, 150
	errs := make(chan error, workers*runs)
	var ww sync.WaitGroup
	for w := range workers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for i := range runs {
				code := (w*runs+i)%200 + 1
				cmd := exec.Command("sh", "-c", "exit "+strconv.Itoa(code))
				if err := r.Start(cmd); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					// Leave the child a zombie for a while, in plain view
					// of the sweeps, before waiting for it.
					waitZombie(cmd.Process.Pid, 50*time.Millisecond)
				}
				err := cmd.Wait()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != code {
					errs <- fmt.Errorf("run %d: Wait() = %v, want exit status %d", w*runs+i, err, code)
				}
			}
		}()
	}
	ww.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 5 {
		t.Errorf("... and %d more", n-5)
	}

	// Every process started so far has been waited for: one sweep drops all
	// their registrations.
	stopOrphans()
	r.Sweep()
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if len(r.owned) != 0 {
		t.Errorf("%d registrations outlived their processes", len(r.owned))
	}
}

func TestSweepDropsStaleRegistrations(t *testing.T) {
	r := New(nil)
	cmd := exec.Command("true")
	if err := r.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	r.Sweep()
	r.regMu.Lock()
	_, ok := r.owned[cmd.Process.Pid]
	r.regMu.Unlock()
	if ok {
		t.Errorf("pid %d still registered after its Wait and a sweep", cmd.Process.Pid)
	}
}

func TestSweepReapsUnregisteredZombie(t *testing.T) {
	r := New(nil)
	// Started without the reaper: to the reaper it is an orphan.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	waitFor(t, "child to become a zombie", func() bool {
		st, ok, _ := readStat(pid)
		return ok && st.state == 'Z'
	})
	if got := r.Sweep(); got < 1 {
		t.Errorf("Sweep() = %d, want at least 1", got)
	}
	if _, ok, _ := readStat(pid); ok {
		t.Errorf("zombie %d still there after Sweep", pid)
	}
	if err := cmd.Wait(); err == nil {
		t.Errorf("Wait() on a reaped child = nil, want an error")
	}
}

func TestForwardSignals(t *testing.T) {
	got := make(chan os.Signal, 1)
	stop := ForwardSignals(func(s os.Signal) { got <- s }, syscall.SIGUSR1)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != syscall.SIGUSR1 {
			t.Errorf("forwarded %v, want %v", s, syscall.SIGUSR1)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("signal not forwarded within 30s")
	}
}

func TestToGroup(t *testing.T) {
	r := New(nil)
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.Start(cmd); err != nil {
		t.Fatal(err)
	}
	ToGroup(cmd.Process.Pid)(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Wait() = %v, want an exit error", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("child ended with %v, want killed by SIGTERM", ws)
	}
}

// waitZombie returns once pid is a zombie or gone, or after d.
func waitZombie(pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if st, ok, _ := readStat(pid); !ok || st.state == 'Z' {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
