package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// defaultPath is the agent's PATH when Spec.Env sets none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Create starts a sandbox as spec says and returns once the agent runs as
// its pid 1. On failure nothing of the sandbox is left.
func (b *Backend) Create(ctx context.Context, spec sandbox.Spec) (*sandbox.Instance, error) {
	start := time.Now()
	lim := fillLimits(spec.Limits, b.cfg.Defaults)
	if err := validateSpec(spec, lim); err != nil {
		return nil, fmt.Errorf("local: create: %w", err)
	}
	if size := len(strings.Join(spec.Env, "")) + len(strings.Join(spec.AgentArgs, "")); size > maxConfig/2 {
		return nil, fmt.Errorf("local: create %s: %w: environment and arguments take %d bytes, more than %d", spec.ID, desktop.ErrInvalid, size, maxConfig/2)
	}
	b.mu.Lock()
	if b.boxes[spec.ID] != nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("local: create %s: %w: the sandbox exists", spec.ID, desktop.ErrConflict)
	}
	if _, err := os.Lstat(b.dir(spec.ID)); err == nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("local: create %s: %w: a previous sandbox with this id was not removed", spec.ID, desktop.ErrConflict)
	}
	slot, err := b.allocSlot(spec.ID)
	if err != nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("local: create %s: %w", spec.ID, err)
	}
	st := &state{ID: spec.ID, Slot: slot, HostBase: b.hostBase(slot), Limits: lim}
	bx := &box{st: st, busy: true}
	b.boxes[spec.ID] = bx
	b.mu.Unlock()

	inst, err := b.create(ctx, bx, spec)
	if err != nil {
		terr := b.teardown(ctx, spec.ID, bx.proc, func() { bx.proc = nil })
		b.mu.Lock()
		delete(b.boxes, spec.ID)
		if terr == nil {
			b.freeSlot(spec.ID)
		}
		// Otherwise the id range stays taken: something of the sandbox
		// is left for Reclaim, and its ids must not go to another one.
		b.mu.Unlock()
		if terr != nil {
			err = fmt.Errorf("%w; cleanup: %w", err, terr)
		}
		return nil, fmt.Errorf("local: create %s: %w", spec.ID, err)
	}
	b.mu.Lock()
	bx.busy = false
	b.mu.Unlock()
	b.watch(spec.ID, inst.InitPID)
	b.log.Info("sandbox created", "sandbox_id", spec.ID, "init_pid", inst.InitPID,
		"host_base", st.HostBase, "duration_ms", time.Since(start).Milliseconds())
	return inst, nil
}

// create makes the sandbox step by step; teardown undoes any prefix of it.
// Each step leaves a trace Reclaim can find (the state directory first)
// before it makes anything that outlives this process.
func (b *Backend) create(ctx context.Context, bx *box, spec sandbox.Spec) (*sandbox.Instance, error) {
	st := bx.st
	dir := b.dir(st.ID)
	var steps []any // step name, milliseconds: logged at debug level
	last := time.Now()
	step := func(name string) {
		now := time.Now()
		steps = append(steps, name+"_ms", now.Sub(last).Milliseconds())
		last = now
	}
	if err := os.Mkdir(dir, 0o711); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := b.writeState(st); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	staging := filepath.Join(dir, stagingDir)
	if err := os.Mkdir(staging, 0o700); err != nil {
		return nil, fmt.Errorf("staging directory: %w", err)
	}
	if err := os.Chown(staging, int(st.HostBase), int(st.HostBase)); err != nil {
		return nil, fmt.Errorf("staging directory: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	defer logf.Close()
	image := filepath.Join(dir, imageFile)
	if err := makeImage(ctx, b.mkfs, image, st.Limits.DiskMB, st.HostBase); err != nil {
		return nil, err
	}
	step("image")
	g := b.h.groups(b.cfg.CgroupRoot, st.ID)
	if err := g.create(st.Limits); err != nil {
		return nil, err
	}
	step("cgroups")
	netInfo, err := b.cfg.Network.Setup(ctx, st.ID)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	if err := b.cfg.Network.Apply(ctx, st.ID, spec.Network); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	step("network")

	// The layers, as detached mounts: they belong to no mount namespace
	// until the init attaches them in the sandbox's, and vanish with
	// this process if it dies before.
	upper, err := mountImage(image, st.HostBase)
	if err != nil {
		return nil, err
	}
	defer unix.Close(upper)
	agent, err := fileTree(spec.Agent)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer unix.Close(agent)
	step("layers")

	proc, conn, err := b.startInit(st, netInfo.NetNSPath, g, logf)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	step("start")
	b.mu.Lock()
	bx.proc = proc
	b.mu.Unlock()
	pid := proc.Pid
	// The init waits for its configuration: place it before it runs any of
	// the sandbox's code.
	if err := g.placeV1(pid); err != nil {
		return nil, err
	}
	if err := writeFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", strconv.Itoa(b.cfg.OOMScoreAdj)); err != nil {
		return nil, fmt.Errorf("oom_score_adj: %w", err)
	}
	ps, err := readProcStat(pid)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	st.InitPID, st.InitStart = pid, ps.start
	if err := b.writeState(st); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}

	userns, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("user namespace: %w", err)
	}
	lower, err := idmappedTree(spec.RootFS, userns)
	unix.Close(userns)
	if err != nil {
		return nil, fmt.Errorf("root filesystem: %w", err)
	}
	defer unix.Close(lower)
	step("place")

	cfg := initConfig{
		Staging:     staging,
		Hostname:    spec.Hostname,
		Env:         agentEnv(spec.Env),
		AgentArgs:   spec.AgentArgs,
		TmpMB:       max(8, st.Limits.MemoryMB/4),
		ShmMB:       max(8, st.Limits.MemoryMB/8),
		AllowPtrace: b.cfg.AllowPtrace,
		Files:       sandboxFiles(spec.Hostname),
	}
	msg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	fds := make([]int, numInitFDs)
	fds[fdLower], fds[fdUpper], fds[fdAgent] = lower, upper, agent
	if _, _, err := conn.WriteMsgUnix(msg, unix.UnixRights(fds...), nil); err != nil {
		return nil, fmt.Errorf("configure init: %w", err)
	}
	if err := awaitExec(ctx, conn, pid); err != nil {
		return nil, fmt.Errorf("%w (log: %s)", err, logTail(filepath.Join(dir, logFile), 512))
	}
	step("init")
	b.log.Debug("sandbox create steps", append([]any{"sandbox_id", st.ID}, steps...)...)
	bx.cpuTime = time.Now()
	data, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return &sandbox.Instance{
		ID:        st.ID,
		InitPID:   pid,
		InitStart: ps.start,
		Addr:      netInfo.Addr,
		State:     data,
		Started:   time.Now(),
	}, nil
}

// agentEnv is env with a PATH when it has none.
func agentEnv(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return env
		}
	}
	return append(append([]string(nil), env...), defaultPath)
}

// logTail returns the last n bytes of the file at path, for error messages.
func logTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "unreadable"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "empty"
	}
	return strings.ReplaceAll(s, "\n", " | ")
}

// LogPath returns the file the agent of sandbox id writes its standard
// output and error to.
func (b *Backend) LogPath(id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("local: log %q: %w: bad id", id, desktop.ErrInvalid)
	}
	p := filepath.Join(b.dir(id), logFile)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("local: log %s: %w", id, desktop.ErrNotFound)
	}
	return p, nil
}

// sandboxFiles are the files every sandbox gets in its own writable layer:
// the host's name servers (the network policy lets the sandbox reach
// them on port 53), a hosts file that knows the sandbox's name, and a
// machine-id of its own (D-Bus and others identify the machine by it).
func sandboxFiles(hostname string) map[string]string {
	var rc strings.Builder
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == "nameserver" {
				if a, err := netip.ParseAddr(f[1]); err == nil && a.Is4() && !a.IsLoopback() {
					rc.WriteString("nameserver " + a.String() + "\n")
				}
			}
		}
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if hostname != "" {
		hosts += "127.0.1.1\t" + hostname + "\n"
	}
	return map[string]string{"etc/resolv.conf": rc.String(), "etc/hosts": hosts, "etc/machine-id": machineID()}
}

// machineID returns a new machine-id file: 32 lower-case hex digits.
func machineID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b) + "\n"
}
