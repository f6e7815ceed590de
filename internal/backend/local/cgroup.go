package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/cubicle-dev/cubicle/internal/mountinfo"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// v1Controllers are the cgroup v1 controllers a sandbox gets a group in.
var v1Controllers = []string{"memory", "pids", "cpu", "cpuacct", "freezer"}

// hierarchies is where the cgroup hierarchies of this host are mounted.
type hierarchies struct {
	v1 map[string]string // controller -> mount point
	// v2 is the cgroup2 mount; its core files (cgroup.freeze, cgroup.kill)
	// work even when every controller sits on v1. Empty when not mounted.
	v2 string
}

// findHierarchies reads the cgroup mounts under root from mountinfo.
func findHierarchies(root string) (hierarchies, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return hierarchies{}, fmt.Errorf("cgroups: %w", err)
	}
	h := hierarchies{v1: map[string]string{}}
	for line := range strings.Lines(string(data)) {
		mnt, fstype, opts, ok := parseMountinfo(line)
		if !ok || (mnt != root && !strings.HasPrefix(mnt, root+"/")) {
			continue
		}
		switch fstype {
		case "cgroup2":
			h.v2 = mnt
		case "cgroup":
			for _, o := range strings.Split(opts, ",") {
				if slices.Contains(v1Controllers, o) {
					h.v1[o] = mnt
				}
			}
		}
	}
	for _, c := range []string{"memory", "pids", "cpu"} {
		if h.v1[c] == "" {
			return h, fmt.Errorf("cgroups: no cgroup v1 %s hierarchy under %s (cgroup v2-only hosts are not supported): %w", c, root, desktop.ErrUnavailable)
		}
	}
	if h.v2 == "" && h.v1["freezer"] == "" {
		return h, fmt.Errorf("cgroups: neither a cgroup2 mount nor a v1 freezer under %s: %w", root, desktop.ErrUnavailable)
	}
	return h, nil
}

// parseMountinfo returns the mount point, filesystem type and super options
// of one /proc/<pid>/mountinfo line.
func parseMountinfo(line string) (mnt, fstype, superOpts string, ok bool) {
	pre, post, found := strings.Cut(strings.TrimSpace(line), " - ")
	if !found {
		return "", "", "", false
	}
	f := strings.Fields(pre)
	g := strings.Fields(post)
	if len(f) < 5 || len(g) < 3 {
		return "", "", "", false
	}
	return mountinfo.Unescape(f[4]), g[0], g[2], true
}

// groups are one sandbox's cgroups.
type groups struct {
	byController map[string]string // v1 controller -> group directory
	v1           []string          // distinct v1 group directories
	v2           string            // the cgroup2 core group, or ""
}

func (h hierarchies) groups(root, id string) groups {
	g := groups{byController: map[string]string{}}
	for _, c := range v1Controllers {
		mnt := h.v1[c]
		if mnt == "" {
			continue
		}
		dir := filepath.Join(mnt, root, id)
		g.byController[c] = dir
		if !slices.Contains(g.v1, dir) {
			g.v1 = append(g.v1, dir)
		}
	}
	if h.v2 != "" {
		g.v2 = filepath.Join(h.v2, root, id)
	}
	return g
}

// ids returns the names of the groups under root in every hierarchy.
func (h hierarchies) ids(root string) ([]string, error) {
	var ids []string
	dirs := []string{}
	for _, mnt := range h.v1 {
		dirs = append(dirs, filepath.Join(mnt, root))
	}
	if h.v2 != "" {
		dirs = append(dirs, filepath.Join(h.v2, root))
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroups: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() && validID(e.Name()) && !slices.Contains(ids, e.Name()) {
				ids = append(ids, e.Name())
			}
		}
	}
	return ids, nil
}

func (g groups) all() []string {
	if g.v2 == "" {
		return g.v1
	}
	return append(slices.Clone(g.v1), g.v2)
}

// create makes the groups and sets the limits.
func (g groups) create(l sandbox.Limits) error {
	for _, d := range g.all() {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
	}
	mem := strconv.FormatInt(int64(l.MemoryMB)<<20, 10)
	quota := max(1000, int64(math.Round(l.CPUs*100000)))
	shares := max(2, int64(math.Round(l.CPUs*1024)))
	writes := []struct{ ctrl, file, value string }{
		{"memory", "memory.limit_in_bytes", mem},
		{"memory", "memory.memsw.limit_in_bytes", mem},
		{"pids", "pids.max", strconv.Itoa(l.Pids)},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.cfs_quota_us", strconv.FormatInt(quota, 10)},
		{"cpu", "cpu.shares", strconv.FormatInt(shares, 10)},
	}
	for _, w := range writes {
		p := filepath.Join(g.byController[w.ctrl], w.file)
		if w.file == "memory.memsw.limit_in_bytes" {
			if _, err := os.Stat(p); err != nil {
				continue // no swap accounting on this kernel
			}
		}
		if err := writeFile(p, w.value); err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
	}
	return nil
}

// placeV1 moves pid (and its threads) into every v1 group; the v2 group
// gets it at clone time.
func (g groups) placeV1(pid int) error {
	for _, d := range g.v1 {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
	}
	return nil
}

// pids returns the processes in the groups.
func (g groups) pids() ([]int, error) {
	var pids []int
	for _, d := range g.all() {
		data, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroups: %w", err)
		}
		for f := range strings.FieldsSeq(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// kill kills every process in the groups and waits until they are gone.
func (g groups) kill(ctx context.Context) error {
	if g.v2 != "" {
		err := writeFile(filepath.Join(g.v2, "cgroup.kill"), "1")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cgroups: kill: %w", err)
		}
	}
	return poll(ctx, func() (bool, error) {
		pids, err := g.pids()
		if err != nil || len(pids) == 0 {
			return true, err
		}
		if g.v2 == "" {
			// Without cgroup.kill: freeze so nothing forks, kill, thaw.
			if err := g.freeze(ctx, true); err != nil {
				return false, err
			}
			pids, _ = g.pids()
			for _, pid := range pids {
				unix.Kill(pid, unix.SIGKILL)
			}
			if err := g.freeze(ctx, false); err != nil {
				return false, err
			}
		}
		return false, nil
	})
}

// remove removes the groups, which must be empty.
func (g groups) remove(ctx context.Context) error {
	return poll(ctx, func() (bool, error) {
		busy := false
		for _, d := range g.all() {
			err := unix.Rmdir(d)
			switch {
			case err == nil, errors.Is(err, unix.ENOENT):
			case errors.Is(err, unix.EBUSY):
				busy = true
			default:
				return false, fmt.Errorf("cgroups: remove %s: %w", d, err)
			}
		}
		return !busy, nil
	})
}

// exists reports whether any of the groups exists.
func (g groups) exists() bool {
	for _, d := range g.all() {
		if _, err := os.Stat(d); err == nil {
			return true
		}
	}
	return false
}

// freeze freezes (on) or thaws the groups and waits until they are.
func (g groups) freeze(ctx context.Context, on bool) error {
	if g.v2 != "" {
		v := "0"
		if on {
			v = "1"
		}
		if err := writeFile(filepath.Join(g.v2, "cgroup.freeze"), v); err != nil {
			return fmt.Errorf("cgroups: freeze: %w", err)
		}
		want := "frozen " + v
		return poll(ctx, func() (bool, error) {
			data, err := os.ReadFile(filepath.Join(g.v2, "cgroup.events"))
			if err != nil {
				return false, fmt.Errorf("cgroups: freeze: %w", err)
			}
			return bytes.Contains(data, []byte(want)), nil
		})
	}
	dir := g.byController["freezer"]
	v := "THAWED"
	if on {
		v = "FROZEN"
	}
	if err := writeFile(filepath.Join(dir, "freezer.state"), v); err != nil {
		return fmt.Errorf("cgroups: freeze: %w", err)
	}
	return poll(ctx, func() (bool, error) {
		data, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
		if err != nil {
			return false, fmt.Errorf("cgroups: freeze: %w", err)
		}
		return strings.TrimSpace(string(data)) == v, nil
	})
}

// readInt reads a file holding one integer.
func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}

// readKeyed reads a file of "key value" lines (memory.stat, cpu.stat).
func readKeyed(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m, sc.Err()
}

// writeFile writes value to an existing file (a cgroup or proc knob).
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// poll calls done until it reports true or an error, or ctx ends.
func poll(ctx context.Context, done func() (bool, error)) error {
	wait := time.Millisecond
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}
