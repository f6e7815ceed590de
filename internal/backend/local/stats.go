package local

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// Stats reports the resource use of sandbox id: CPU since the previous
// call (as a percentage of its CPU limit), memory from its memory cgroup
// (page cache counted apart) and disk from its writable layer.
func (b *Backend) Stats(ctx context.Context, id string) (sandbox.Stats, error) {
	bx, err := b.get("stats", id)
	if err != nil {
		return sandbox.Stats{}, err
	}
	g := b.h.groups(b.cfg.CgroupRoot, id)
	lim := bx.st.Limits
	s := sandbox.Stats{CPUCount: int(math.Ceil(lim.CPUs))}

	usage, err := b.cpuUsage(g)
	if err != nil {
		return s, fmt.Errorf("local: stats %s: %w", id, err)
	}
	now := time.Now()
	bx.mu.Lock()
	if wall := now.Sub(bx.cpuTime); wall > 0 && !bx.cpuTime.IsZero() {
		s.CPUUsedPct = 100 * float64(usage-bx.cpuUsage) / float64(wall.Nanoseconds()) / lim.CPUs
		s.CPUUsedPct = max(0, min(100, s.CPUUsedPct))
	}
	bx.cpuUsage, bx.cpuTime = usage, now
	bx.mu.Unlock()

	mem := g.byController["memory"]
	if s.MemTotal, err = readInt(filepath.Join(mem, "memory.limit_in_bytes")); err != nil {
		return s, fmt.Errorf("local: stats %s: %w", id, err)
	}
	used, err := readInt(filepath.Join(mem, "memory.usage_in_bytes"))
	if err != nil {
		return s, fmt.Errorf("local: stats %s: %w", id, err)
	}
	ms, err := readKeyed(filepath.Join(mem, "memory.stat"))
	if err != nil {
		return s, fmt.Errorf("local: stats %s: %w", id, err)
	}
	s.MemCache = ms["total_cache"]
	s.MemUsed = max(0, used-ms["total_inactive_file"])

	// The sandbox's root is an overlay, whose statfs is its upper layer's.
	s.DiskUsed, s.DiskTotal, err = diskUsage("/proc/" + strconv.Itoa(bx.st.InitPID) + "/root/")
	if err != nil {
		return s, fmt.Errorf("local: stats %s: disk: %w", id, err)
	}
	return s, nil
}

// cpuUsage returns the CPU time the sandbox used, in nanoseconds.
func (b *Backend) cpuUsage(g groups) (int64, error) {
	if d := g.byController["cpuacct"]; d != "" {
		return readInt(filepath.Join(d, "cpuacct.usage"))
	}
	if g.v2 != "" {
		st, err := readKeyed(filepath.Join(g.v2, "cpu.stat"))
		if err != nil {
			return 0, err
		}
		return st["usage_usec"] * 1000, nil
	}
	return 0, errors.New("no cpu accounting")
}
