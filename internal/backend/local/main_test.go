package local

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// The test binary plays every part: `sandbox-init` is the sandbox's init,
// `agent ...` the probe that runs as pid 1 inside, `mini-server` a server
// that the crash test kills.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "sandbox-init":
			os.Exit(InitMain(os.Args[2:]))
		case "agent":
			os.Exit(probeMain(os.Args[2:]))
		case "mini-server":
			os.Exit(miniServerMain(os.Args[2:]))
		}
	}
	os.Exit(m.Run())
}

// harnessSeq gives every harness an id range of its own.
var harnessSeq atomic.Uint32

const testIDRanges = 16

// harness is a Backend on a state directory, cgroup root, network
// directory and id ranges of its own.
type harness struct {
	t   testing.TB
	b   *Backend
	cfg Config
	// ids are the sandboxes the test created; cleanup checks that
	// nothing of them is left.
	ids []string
}

func requireHost(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("needs loop devices")
	}
	if _, err := findHierarchies(DefaultCgroupFS); err != nil {
		t.Skipf("needs cgroups: %v", err)
	}
}

// testConfig returns a Config on fresh directories and cgroups, removed at
// the end of the test.
func testConfig(t testing.TB) Config {
	t.Helper()
	name := "t" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(int(harnessSeq.Add(1)))
	if err := os.MkdirAll("/var/lib/cubicle/test-state", 0o711); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join("/var/lib/cubicle/test-state", name)
	netDir := filepath.Join("/run/cubicle-test", name)
	network, err := NewLoopbackNetwork(netDir)
	if err != nil {
		t.Fatal(err)
	}
	cgRoot := "cubicle-test-" + name
	t.Cleanup(func() {
		os.Remove(stateDir)
		os.Remove(netDir)
		h, _ := findHierarchies(DefaultCgroupFS)
		for _, mnt := range h.v1 {
			os.Remove(filepath.Join(mnt, cgRoot))
		}
		if h.v2 != "" {
			os.Remove(filepath.Join(h.v2, cgRoot))
		}
	})
	return Config{
		StateDir:   stateDir,
		CgroupRoot: cgRoot,
		IDBase:     1<<24 + (uint32(os.Getpid())*16+harnessSeq.Load())%4000*testIDRanges*IDRangeSize,
		IDRanges:   testIDRanges,
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Network:    network,
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	requireHost(t)
	return newHarnessWith(t, testConfig(t))
}

// newHarnessWith returns a harness on cfg (from testConfig) that, at
// cleanup, reclaims everything and checks that nothing is left.
func newHarnessWith(t testing.TB, cfg Config) *harness {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h := &harness{t: t, b: b, cfg: b.cfg}
	t.Cleanup(func() {
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.Reclaim(ctx, nil); err != nil {
			t.Errorf("Reclaim at cleanup: %v", err)
		}
		for _, id := range h.ids {
			h.assertGone(id)
		}
		if procs := processesInSpan(b.cfg.IDBase, uint64(b.cfg.IDRanges)*IDRangeSize); len(procs) > 0 {
			t.Errorf("processes left in the backend's id ranges: %v", procs)
		}
	})
	return h
}

func newID(t testing.TB) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	buf := make([]byte, 20)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = letters[int(buf[i])%len(letters)]
	}
	return string(buf)
}

func testBinary(t testing.TB) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// spec returns a spec running the probe with args on rootfs.
func (h *harness) spec(rootfs string, args ...string) sandbox.Spec {
	return sandbox.Spec{
		ID:        newID(h.t),
		RootFS:    rootfs,
		Agent:     testBinary(h.t),
		AgentArgs: args,
		Env:       []string{"HOME=/root"},
		Hostname:  "sbx",
		Limits:    sandbox.Limits{CPUs: 1, MemoryMB: 256, DiskMB: 64, Pids: 256},
	}
}

// create creates the sandbox and destroys it at cleanup.
func (h *harness) create(spec sandbox.Spec) *sandbox.Instance {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h.ids = append(h.ids, spec.ID)
	inst, err := h.b.Create(ctx, spec)
	if err != nil {
		h.t.Fatalf("Create: %v", err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.b.Destroy(ctx, spec.ID); err != nil {
			h.t.Errorf("Destroy: %v", err)
		}
	})
	return inst
}

// waitLog waits until the sandbox's log has a line starting with prefix
// and returns the rest of that line.
func (h *harness) waitLog(id, prefix string) string {
	h.t.Helper()
	path, err := h.b.LogPath(id)
	if err != nil {
		h.t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		data, _ := os.ReadFile(path)
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return strings.TrimSpace(rest)
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no %q in the log after 2 minutes; log:\n%s", prefix, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertGone checks that nothing of sandbox id is left on the host.
func (h *harness) assertGone(id string) {
	h.t.Helper()
	for _, leak := range leftovers(h.cfg, id) {
		h.t.Errorf("sandbox %s left %s", id, leak)
	}
}

// leftovers lists what is left of sandbox id on the host.
func leftovers(cfg Config, id string) []string {
	var out []string
	dir := filepath.Join(cfg.StateDir, id)
	if _, err := os.Lstat(dir); err == nil {
		out = append(out, "state directory "+dir)
	}
	hs, _ := findHierarchies(cfg.CgroupFS)
	for _, d := range hs.groups(cfg.CgroupRoot, id).all() {
		if _, err := os.Stat(d); err == nil {
			out = append(out, "cgroup "+d)
		}
	}
	devs, _ := loopsUnder(dir)
	for _, d := range devs {
		out = append(out, "loop device "+d)
	}
	if ln, ok := cfg.Network.(*LoopbackNetwork); ok {
		if _, err := os.Lstat(filepath.Join(ln.dir, id)); err == nil {
			out = append(out, "network namespace "+filepath.Join(ln.dir, id))
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if data, err := os.ReadFile(p + "/mountinfo"); err == nil && strings.Contains(string(data), id) {
			out = append(out, "a mount in "+p+"/mountinfo")
		}
	}
	return out
}

// processesInRange returns the processes (zombies too) whose real or
// effective uid is in [base, base+IDRangeSize).
func processesInRange(base uint32) []string { return processesInSpan(base, IDRangeSize) }

// processesInSpan returns the processes (zombies too) whose real or
// effective uid is in [base, base+size).
func processesInSpan(base uint32, size uint64) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		data, err := os.ReadFile(p + "/status")
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			rest, ok := strings.CutPrefix(line, "Uid:")
			if !ok {
				continue
			}
			for i, f := range strings.Fields(rest) {
				uid, _ := strconv.ParseUint(f, 10, 32)
				if i < 2 && uint32(uid) >= base && uid < uint64(base)+size {
					out = append(out, fmt.Sprintf("%s (uid %d)", p, uid))
					break
				}
			}
		}
	}
	return out
}

// procStatus returns the value of key in /proc/<pid>/status.
func procStatus(t testing.TB, pid int, key string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

// hostBase returns the first host id of inst's range.
func hostBaseOf(t testing.TB, inst *sandbox.Instance) uint32 {
	t.Helper()
	st, err := decodeState(inst.State)
	if err != nil {
		t.Fatal(err)
	}
	return st.HostBase
}
