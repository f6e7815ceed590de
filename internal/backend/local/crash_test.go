package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// miniServerConfig is what the crash test tells the mini server.
type miniServerConfig struct {
	StateDir   string
	CgroupRoot string
	IDBase     uint32
	IDRanges   int
	NetDir     string
	RootFS     string
	Count      int
}

// miniServerMain creates sandboxes as a server would, prints their
// instances and waits to be killed.
func miniServerMain(args []string) int {
	var c miniServerConfig
	if err := json.Unmarshal([]byte(os.Getenv("CUBICLE_TEST_SERVER")), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	network, err := NewLoopbackNetwork(c.NetDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, err := New(Config{
		StateDir: c.StateDir, CgroupRoot: c.CgroupRoot, IDBase: c.IDBase, IDRanges: c.IDRanges,
		Network: network, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	exe, _ := os.Executable()
	for i := range c.Count {
		inst, err := b.Create(context.Background(), sandbox.Spec{
			ID:        fmt.Sprintf("crash%06d%09d", os.Getpid()%1000000, i),
			RootFS:    c.RootFS,
			Agent:     exe,
			AgentArgs: []string{"ready"},
			Hostname:  "sbx",
			Limits:    sandbox.Limits{CPUs: 0.5, MemoryMB: 128, DiskMB: 32, Pids: 64},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		data, _ := json.Marshal(inst)
		fmt.Printf("INSTANCE %s\n", data)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// TestServerCrash is ISOLATION §6 test 14: the process that created the
// sandboxes dies by SIGKILL; the sandboxes keep running, a new Backend
// adopts one and destroys it and reclaims the other, and nothing of
// either is left.
func TestServerCrash(t *testing.T) {
	requireHost(t)
	rootfs := busyboxRootFS(t)
	cfg := testConfig(t)
	// The orphaned inits come to this process, which reaps them; the
	// machine's pid 1 might not.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	conf, _ := json.Marshal(miniServerConfig{
		StateDir: cfg.StateDir, CgroupRoot: cfg.CgroupRoot, IDBase: cfg.IDBase, IDRanges: cfg.IDRanges,
		NetDir: cfg.Network.(*LoopbackNetwork).dir, RootFS: rootfs, Count: 2,
	})
	server := exec.Command(testBinary(t), "mini-server")
	server.Env = append(os.Environ(), "CUBICLE_TEST_SERVER="+string(conf))
	server.Stderr = testWriter{t}
	server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			server.Process.Kill()
			server.Wait()
		}
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var insts []sandbox.Instance
	timeout := time.After(2 * time.Minute)
	for len(insts) < 2 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("mini server ended after %d sandboxes", len(insts))
			}
			var inst sandbox.Instance
			if rest, found := strings.CutPrefix(line, "INSTANCE "); found {
				if err := json.Unmarshal([]byte(rest), &inst); err != nil {
					t.Fatal(err)
				}
				insts = append(insts, inst)
			}
		case <-timeout:
			t.Fatalf("mini server made %d sandboxes in 2 minutes", len(insts))
		}
	}
	bases := []uint32{hostBaseOf(t, &insts[0]), hostBaseOf(t, &insts[1])}
	defer func() {
		for i, inst := range insts {
			if left := leftovers(cfg, inst.ID); len(left) > 0 {
				t.Errorf("sandbox %s left %v", inst.ID, left)
			}
			if procs := processesInRange(bases[i]); len(procs) > 0 {
				t.Errorf("sandbox %s left processes %v", inst.ID, procs)
			}
		}
	}()

	server.Process.Signal(unix.SIGKILL)
	server.Wait()
	killed = true
	for range lines {
	}
	for _, inst := range insts {
		if !alive(inst.InitPID, inst.InitStart) {
			t.Fatalf("sandbox %s died with the server", inst.ID)
		}
	}
	// The server mounted nothing in the host's namespace: the layers only
	// ever were detached mounts, then the sandboxes' own.
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(mi), cfg.StateDir) {
		t.Errorf("the host's mount table refers to the state directory after the server died (%v)", err)
	}

	h := newHarnessWith(t, cfg)
	b := h.b
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stale := insts[0]
	stale.InitStart++
	if err := b.Adopt(ctx, stale); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("Adopt with another start time: got %v, want ErrNotFound", err)
	}
	if err := b.Adopt(ctx, insts[0]); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if _, err := b.Stats(ctx, insts[0].ID); err != nil {
		t.Errorf("Stats of the adopted sandbox: %v", err)
	}
	// A new sandbox must not get the range of the one not adopted yet.
	fresh := h.create(h.spec(rootfs, "ready"))
	if got := hostBaseOf(t, fresh); got == bases[0] || got == bases[1] {
		t.Errorf("new sandbox got host base %d, taken by a running sandbox", got)
	}
	if err := b.Destroy(ctx, insts[0].ID); err != nil {
		t.Fatalf("Destroy of the adopted sandbox: %v", err)
	}
	if err := b.Reclaim(ctx, map[string]bool{insts[0].ID: true}); err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	if !alive(fresh.InitPID, fresh.InitStart) {
		t.Errorf("Reclaim killed a sandbox the backend holds")
	}
	for _, inst := range insts {
		if err := reap(ctx, inst.InitPID); err != nil {
			t.Errorf("reap %d: %v", inst.InitPID, err)
		}
	}
}

// TestServerCrashDuringCreate kills the server while it creates sandboxes,
// at whatever step it is in; Reclaim by a new Backend leaves nothing.
func TestServerCrashDuringCreate(t *testing.T) {
	requireHost(t)
	rootfs := busyboxRootFS(t)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	for round := range 4 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			cfg := testConfig(t)
			conf, _ := json.Marshal(miniServerConfig{
				StateDir: cfg.StateDir, CgroupRoot: cfg.CgroupRoot, IDBase: cfg.IDBase, IDRanges: cfg.IDRanges,
				NetDir: cfg.Network.(*LoopbackNetwork).dir, RootFS: rootfs, Count: cfg.IDRanges,
			})
			server := exec.Command(testBinary(t), "mini-server")
			server.Env = append(os.Environ(), "CUBICLE_TEST_SERVER="+string(conf))
			server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			out, err := server.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := server.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait for the first sandbox, then kill the server a little
			// later, in the middle of creating another.
			sc := bufio.NewScanner(out)
			sc.Scan()
			time.Sleep(time.Duration(round*7) * time.Millisecond)
			server.Process.Signal(unix.SIGKILL)
			server.Wait()

			b := newHarnessWith(t, cfg).b
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := b.Reclaim(ctx, nil); err != nil {
				t.Fatalf("Reclaim: %v", err)
			}
			reapOrphans(t, cfg)
			ids, _ := b.stateIDs()
			if len(ids) > 0 {
				t.Errorf("state directories left: %v", ids)
			}
		})
	}
}

// reapOrphans reaps the zombie children of this process (orphaned inits)
// until no process is left in cfg's id ranges.
func reapOrphans(t *testing.T, cfg Config) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(processesInSpan(cfg.IDBase, uint64(cfg.IDRanges)*IDRangeSize)) > 0 && time.Now().Before(deadline) {
		procs, _ := filepath.Glob("/proc/[0-9]*")
		for _, p := range procs {
			data, err := os.ReadFile(p + "/stat")
			if err != nil {
				continue
			}
			st, err := parseProcStat(data)
			rest := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
			if err != nil || st.state != 'Z' || len(rest) < 2 || rest[1] != fmt.Sprint(os.Getpid()) {
				continue
			}
			pid, _ := strconv.Atoi(filepath.Base(p))
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
