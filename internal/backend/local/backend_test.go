package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

func TestCreateDestroy(t *testing.T) {
	h := newHarness(t)
	spec := h.spec(busyboxRootFS(t), "ready")
	inst := h.create(spec)
	h.waitLog(spec.ID, "READY")
	if !alive(inst.InitPID, inst.InitStart) {
		t.Fatalf("init %d is not alive", inst.InitPID)
	}
	ctx := context.Background()
	if err := h.b.Destroy(ctx, spec.ID); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	h.assertGone(spec.ID)
	if got := processesInRange(hostBaseOf(t, inst)); len(got) > 0 {
		t.Errorf("processes left in the sandbox's id range: %v", got)
	}
	if err := h.b.Destroy(ctx, spec.ID); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	for _, op := range []func() error{
		func() error { return h.b.Pause(ctx, spec.ID) },
		func() error { _, err := h.b.Stats(ctx, spec.ID); return err },
		func() error { return h.b.SetNetwork(ctx, spec.ID, sandbox.NetworkPolicy{}) },
	} {
		if err := op(); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("operation on a destroyed sandbox: got %v, want ErrNotFound", err)
		}
	}
}

// probeEnv tells the probe what it must not see.
func (h *harness) probeEnv(rootfs string) []string {
	paths := []string{h.cfg.StateDir, rootfs, "/work", "/var/lib/cubicle", "/run/cubicle-test",
		filepath.Dir(testBinary(h.t)), "/sys/fs/cgroup/memory"}
	return []string{"PROBE_HOST_PATHS=" + strings.Join(paths, ":"), "PROBE_HOST_PID=" + strconv.Itoa(os.Getpid())}
}

// assertAllOK checks a probe's results line.
func assertAllOK(t *testing.T, what, line string) {
	t.Helper()
	var res map[string]string
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("%s: %v in %q", what, err, line)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range res {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		if res[name] != "ok" {
			t.Errorf("%s: %s: %s", what, name, res[name])
		}
	}
	t.Logf("%s: %d checks: %v", what, len(res), names)
}

// TestPosture is ISOLATION §6 test 1: what the sandbox's root and its
// uid 1000 see and may do, from inside, and the init as the host sees it.
func TestPosture(t *testing.T) {
	h := newHarness(t)
	rootfs := busyboxRootFS(t)
	spec := h.spec(rootfs, "posture")
	spec.Env = append(spec.Env, h.probeEnv(rootfs)...)
	inst := h.create(spec)
	assertAllOK(t, "root", h.waitLog(spec.ID, "POSTURE "))
	assertAllOK(t, "uid 1000", h.waitLog(spec.ID, "POSTURE-USER "))

	hb := hostBaseOf(t, inst)
	tests := []struct{ key, want string }{
		{"Seccomp", "2"},
		{"NoNewPrivs", "0"},
		{"Uid", fmt.Sprintf("%d\t%d\t%d\t%d", hb, hb, hb, hb)},
		{"Gid", fmt.Sprintf("%d\t%d\t%d\t%d", hb, hb, hb, hb)},
	}
	for _, tc := range tests {
		if got := procStatus(t, inst.InitPID, tc.key); got != tc.want {
			t.Errorf("host view of the init: %s = %q, want %q", tc.key, got, tc.want)
		}
	}
	for _, ns := range []string{"user", "pid", "mnt", "net", "uts", "ipc", "cgroup"} {
		mine, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", inst.InitPID, ns))
		if err != nil {
			t.Fatal(err)
		}
		if mine == theirs {
			t.Errorf("the sandbox shares the host's %s namespace (%s)", ns, mine)
		}
	}
	if got, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", inst.InitPID)); err != nil || strings.TrimSpace(string(got)) != strconv.Itoa(DefaultOOMScoreAdj) {
		t.Errorf("oom_score_adj = %q (%v), want %d", got, err, DefaultOOMScoreAdj)
	}
	// The template is shared, not written: the probe's edits went to the
	// sandbox's own layer.
	if _, err := os.Stat(filepath.Join(rootfs, "etc/probe")); err == nil {
		t.Errorf("the probe's file appeared in the template")
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc/group")); err != nil {
		t.Errorf("the template lost /etc/group: %v", err)
	}
}

// TestEscapes is ISOLATION §6 test 13.
func TestEscapes(t *testing.T) {
	h := newHarness(t)
	rootfs := busyboxRootFS(t)
	spec := h.spec(rootfs, "escape")
	spec.Env = append(spec.Env, h.probeEnv(rootfs)...)
	h.create(spec)
	assertAllOK(t, "escapes", h.waitLog(spec.ID, "ESCAPE "))
}

// recordingNetwork is a LoopbackNetwork that records the policies applied.
type recordingNetwork struct {
	*LoopbackNetwork
	mu      sync.Mutex
	applied map[string][]sandbox.NetworkPolicy
}

func (n *recordingNetwork) Apply(ctx context.Context, id string, p sandbox.NetworkPolicy) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.applied[id] = append(n.applied[id], p)
	return nil
}

func TestNetworkPolicy(t *testing.T) {
	requireHost(t)
	cfg := testConfig(t)
	rec := &recordingNetwork{LoopbackNetwork: cfg.Network.(*LoopbackNetwork), applied: map[string][]sandbox.NetworkPolicy{}}
	cfg.Network = rec
	h := newHarnessWith(t, cfg)
	b := h.b
	spec := h.spec(busyboxRootFS(t), "ready")
	first := sandbox.NetworkPolicy{Internet: true, DenyOut: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}}
	spec.Network = first
	h.create(spec)
	second := sandbox.NetworkPolicy{AllowOut: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}}
	if err := b.SetNetwork(context.Background(), spec.ID, second); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	got := rec.applied[spec.ID]
	rec.mu.Unlock()
	if diff := cmp.Diff([]sandbox.NetworkPolicy{first, second}, got, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("policies applied (-want +got):\n%s", diff)
	}
}

// TestConcurrent creates and destroys sandboxes at the same time: each
// gets an id range of its own.
func TestConcurrent(t *testing.T) {
	h := newHarness(t)
	rootfs := busyboxRootFS(t)
	const n = 4
	specs := make([]sandbox.Spec, n)
	insts := make([]*sandbox.Instance, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range specs {
		specs[i] = h.spec(rootfs, "ready")
		h.ids = append(h.ids, specs[i].ID)
		wg.Go(func() { insts[i], errs[i] = h.b.Create(context.Background(), specs[i]) })
	}
	wg.Wait()
	bases := map[uint32]bool{}
	for i := range specs {
		if errs[i] != nil {
			t.Fatalf("Create %d: %v", i, errs[i])
		}
		h.waitLog(specs[i].ID, "READY")
		bases[hostBaseOf(t, insts[i])] = true
	}
	if len(bases) != n {
		t.Errorf("%d sandboxes share %d id ranges", n, len(bases))
	}
	for i := range specs {
		wg.Go(func() { errs[i] = h.b.Destroy(context.Background(), specs[i].ID) })
	}
	wg.Wait()
	for i := range specs {
		if errs[i] != nil {
			t.Errorf("Destroy %d: %v", i, errs[i])
		}
		h.assertGone(specs[i].ID)
	}
}

// TestCreateFails: an agent that cannot be executed fails Create with the
// init's reason, and nothing of the sandbox is left.
func TestCreateFails(t *testing.T) {
	h := newHarness(t)
	agent := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(agent, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := h.spec(busyboxRootFS(t), "ready")
	spec.Agent = agent
	h.ids = append(h.ids, spec.ID)
	_, err := h.b.Create(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "exec /usr/local/bin/cubicle") {
		t.Fatalf("Create with a broken agent: %v, want the init's exec error", err)
	}
	h.assertGone(spec.ID)
	if len(h.b.slots) != 0 {
		t.Errorf("id ranges still taken: %v", h.b.slots)
	}
}

func TestCreateInvalid(t *testing.T) {
	h := newHarness(t)
	rootfs := busyboxRootFS(t)
	tests := []struct {
		name string
		edit func(*sandbox.Spec)
	}{
		{"bad id", func(s *sandbox.Spec) { s.ID = "../../etc" }},
		{"relative root", func(s *sandbox.Spec) { s.RootFS = "rootfs" }},
		{"missing agent", func(s *sandbox.Spec) { s.Agent = "/nonexistent" }},
		{"env without =", func(s *sandbox.Spec) { s.Env = []string{"FOO"} }},
		{"tiny memory", func(s *sandbox.Spec) { s.Limits.MemoryMB = 1 }},
		{"negative cpus", func(s *sandbox.Spec) { s.Limits.CPUs = -1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := h.spec(rootfs, "ready")
			tc.edit(&spec)
			if _, err := h.b.Create(context.Background(), spec); !errors.Is(err, desktop.ErrInvalid) {
				t.Errorf("Create: %v, want ErrInvalid", err)
			}
		})
	}
	spec := h.spec(rootfs, "ready")
	h.create(spec)
	if _, err := h.b.Create(context.Background(), spec); !errors.Is(err, desktop.ErrConflict) {
		t.Errorf("Create of an existing id: %v, want ErrConflict", err)
	}
}

// TestReclaimPartial: what a crash in the middle of Create leaves (a state
// directory, cgroups, a network namespace, no process) goes with Reclaim,
// and only what is not kept.
func TestReclaimPartial(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ids := []string{newID(t), newID(t)}
	for _, id := range ids {
		if err := os.MkdirAll(filepath.Join(h.cfg.StateDir, id, stagingDir), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := h.b.h.groups(h.cfg.CgroupRoot, id).create(h.cfg.Defaults); err != nil {
			t.Fatal(err)
		}
		if _, err := h.cfg.Network.Setup(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.b.Reclaim(ctx, map[string]bool{ids[1]: true}); err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	h.assertGone(ids[0])
	if _, err := os.Stat(filepath.Join(h.cfg.StateDir, ids[1])); err != nil {
		t.Errorf("Reclaim removed the state of a kept sandbox: %v", err)
	}
	if !h.b.h.groups(h.cfg.CgroupRoot, ids[1]).exists() {
		t.Errorf("Reclaim removed the cgroups of a kept sandbox")
	}
	h.ids = append(h.ids, ids...)
}
