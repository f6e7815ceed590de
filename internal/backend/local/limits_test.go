package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pollUntil calls cond every 50 ms until it holds, failing the test after
// timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func cgroupFile(t *testing.T, h *harness, ctrl, id, file string) string {
	t.Helper()
	dir := h.b.h.groups(h.cfg.CgroupRoot, id).byController[ctrl]
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func keyed(text, key string) int64 {
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			return n
		}
	}
	return -1
}

// TestForkBomb is ISOLATION §6 test 2: a fork bomb fills the sandbox's
// pids.max and no more; the host can still start processes. Every bomb
// process forks forever, so the bomb cannot die out when forks fail.
func TestForkBomb(t *testing.T) {
	h := newHarness(t)
	spec := h.spec(busyboxRootFS(t), "run", "echo BOMB; f() { while :; do f & done; }; f 2>/dev/null")
	spec.Limits.Pids = 64
	inst := h.create(spec)
	h.waitLog(spec.ID, "BOMB")
	pollUntil(t, time.Minute, "pids.current reaches pids.max", func() bool {
		return cgroupFile(t, h, "pids", spec.ID, "pids.current") == "64"
	})
	if got := cgroupFile(t, h, "pids", spec.ID, "pids.max"); got != "64" {
		t.Errorf("pids.max = %s, want 64", got)
	}
	if n := keyed(cgroupFile(t, h, "pids", spec.ID, "pids.events"), "max"); n <= 0 {
		t.Errorf("pids.events max = %d, want > 0", n)
	}
	start := time.Now()
	for range 20 {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatalf("the host cannot start a process during the fork bomb: %v", err)
		}
	}
	t.Logf("host: 20 fork+exec in %v during the fork bomb", time.Since(start))
	if !alive(inst.InitPID, inst.InitStart) {
		t.Errorf("the sandbox's pid 1 died")
	}
	ctx := context.Background()
	if err := h.b.Destroy(ctx, spec.ID); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	h.assertGone(spec.ID)
}

// TestMemoryHog is ISOLATION §6 test 3: a process allocating four times
// the limit is OOM-killed inside the sandbox's memory cgroup; a tmpfs fill
// stops at the tmpfs cap; the sandbox and the backend live on.
func TestMemoryHog(t *testing.T) {
	h := newHarness(t)
	spec := h.spec(busyboxRootFS(t), "run",
		agentPath+" agent hog 512; echo HOG-EXIT $?; dd if=/dev/zero of=/tmp/fill bs=1M count=128; echo DD-EXIT $?")
	spec.Limits.MemoryMB = 128
	inst := h.create(spec)
	if got := h.waitLog(spec.ID, "HOG-EXIT"); got != "137" {
		t.Errorf("hog exit status %s, want 137 (SIGKILL)", got)
	}
	if got := h.waitLog(spec.ID, "DD-EXIT"); got == "0" {
		t.Errorf("dd into /tmp succeeded: /tmp is not capped")
	}
	h.waitLog(spec.ID, "EXIT")
	log, _ := h.b.LogPath(spec.ID)
	if data, _ := os.ReadFile(log); !strings.Contains(string(data), "No space left on device") {
		t.Errorf("dd into /tmp did not hit ENOSPC; log:\n%s", data)
	}
	if n := keyed(cgroupFile(t, h, "memory", spec.ID, "memory.oom_control"), "oom_kill"); n < 1 {
		t.Errorf("memory.oom_control oom_kill = %d, want >= 1", n)
	}
	if !alive(inst.InitPID, inst.InitStart) {
		t.Errorf("the sandbox's pid 1 died")
	}
	st, err := h.b.Stats(context.Background(), spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.MemTotal != 128<<20 {
		t.Errorf("Stats MemTotal = %d, want %d", st.MemTotal, 128<<20)
	}
}

// TestCPUQuota is ISOLATION §6 test 4: two busy loops in a sandbox limited
// to half a CPU use no more than half a CPU.
func TestCPUQuota(t *testing.T) {
	h := newHarness(t)
	spec := h.spec(busyboxRootFS(t), "run", "echo SPIN; while :; do :; done & while :; do :; done & wait")
	spec.Limits.CPUs = 0.5
	h.create(spec)
	h.waitLog(spec.ID, "SPIN")
	usage := func() int64 {
		n, err := strconv.ParseInt(cgroupFile(t, h, "cpuacct", spec.ID, "cpuacct.usage"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	time.Sleep(200 * time.Millisecond) // let both loops start
	u0, t0 := usage(), time.Now()
	time.Sleep(3 * time.Second)
	u1, t1 := usage(), time.Now()
	used, wall := time.Duration(u1-u0), t1.Sub(t0)
	t.Logf("CPU %v in %v wall", used, wall)
	if limit := time.Duration(float64(wall) * 0.5 * 1.1); used > limit {
		t.Errorf("used %v of CPU in %v, more than half a CPU + 10%% (%v)", used, wall, limit)
	}
	if used < wall/20 {
		t.Errorf("used only %v of CPU in %v: the loops did not run", used, wall)
	}
	if n := keyed(cgroupFile(t, h, "cpu", spec.ID, "cpu.stat"), "nr_throttled"); n <= 0 {
		t.Errorf("cpu.stat nr_throttled = %d, want > 0", n)
	}
	st, err := h.b.Stats(context.Background(), spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUCount != 1 || st.CPUUsedPct <= 0 || st.CPUUsedPct > 100 {
		t.Errorf("Stats CPU: count %d, used %.1f%%", st.CPUCount, st.CPUUsedPct)
	}
}

// TestDiskQuota is ISOLATION §6 test 5: writing twice the disk limit ends
// in ENOSPC inside, and the host gives the sandbox no more than its limit.
func TestDiskQuota(t *testing.T) {
	h := newHarness(t)
	spec := h.spec(busyboxRootFS(t), "run", "dd if=/dev/zero of=/root/big bs=1M count=128; echo DD-EXIT $?")
	spec.Limits.DiskMB = 64
	var before unix.Statfs_t
	unix.Statfs(h.cfg.StateDir, &before)
	h.create(spec)
	if got := h.waitLog(spec.ID, "DD-EXIT"); got == "0" {
		t.Fatalf("writing 128 MiB into a 64 MiB sandbox succeeded")
	}
	log, _ := h.b.LogPath(spec.ID)
	if data, _ := os.ReadFile(log); !strings.Contains(string(data), "No space left on device") {
		t.Errorf("dd did not hit ENOSPC; log:\n%s", data)
	}
	var img unix.Stat_t
	if err := unix.Stat(filepath.Join(h.cfg.StateDir, spec.ID, imageFile), &img); err != nil {
		t.Fatal(err)
	}
	if used := img.Blocks * 512; used > 65<<20 {
		t.Errorf("the image takes %d bytes of host disk, more than the 64 MiB limit", used)
	}
	var after unix.Statfs_t
	unix.Statfs(h.cfg.StateDir, &after)
	t.Logf("host free space dropped by %d MiB (other writers included)", (int64(before.Bavail)-int64(after.Bavail))*after.Bsize>>20)
	st, err := h.b.Stats(context.Background(), spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.DiskTotal <= 0 || st.DiskTotal > 64<<20 || st.DiskUsed < st.DiskTotal*9/10 {
		t.Errorf("Stats disk: used %d of %d, want a full 64 MiB", st.DiskUsed, st.DiskTotal)
	}
}

// TestPauseResume freezes a sandbox that counts: the counter stops while
// it is paused and goes on after Resume.
func TestPauseResume(t *testing.T) {
	h := newHarness(t)
	spec := h.spec(busyboxRootFS(t), "run", "echo COUNTING; i=0; while :; do i=$((i+1)); echo $i > /tmp/n.tmp; mv /tmp/n.tmp /tmp/n; done")
	inst := h.create(spec)
	h.waitLog(spec.ID, "COUNTING")
	counter := filepath.Join("/proc", strconv.Itoa(inst.InitPID), "root/tmp/n")
	read := func() int {
		data, _ := os.ReadFile(counter)
		n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		return n
	}
	pollUntil(t, time.Minute, "counter starts", func() bool { return read() > 0 })
	ctx := context.Background()
	if err := h.b.Pause(ctx, spec.ID); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	frozen := read()
	time.Sleep(300 * time.Millisecond)
	if got := read(); got != frozen {
		t.Errorf("counter moved from %d to %d while paused", frozen, got)
	}
	if err := h.b.Resume(ctx, spec.ID); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	pollUntil(t, time.Minute, "counter moves after Resume", func() bool { return read() > frozen })
	// A paused sandbox can be destroyed.
	if err := h.b.Pause(ctx, spec.ID); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := h.b.Destroy(ctx, spec.ID); err != nil {
		t.Fatalf("Destroy of a paused sandbox: %v", err)
	}
	h.assertGone(spec.ID)
}
