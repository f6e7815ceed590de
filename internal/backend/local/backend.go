package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

var _ sandbox.Backend = (*Backend)(nil)

// teardownTimeout bounds how long removing one sandbox may take when the
// caller's context has no deadline.
const teardownTimeout = 30 * time.Second

// Backend runs sandboxes on this host. Its methods are safe for concurrent
// use. Sandboxes run on their own; the Backend watches their inits (see
// Exited) until Close.
type Backend struct {
	cfg   Config
	log   *slog.Logger
	h     hierarchies
	mkfs  string
	mu    sync.Mutex
	boxes map[string]*box
	slots map[int]string // id range -> sandbox id

	watches  map[string]*os.File // sandbox id -> pidfd of its init
	watchers sync.WaitGroup
	exited   chan string
	done     chan struct{} // closed by Close
	closed   bool
}

// box is a sandbox this Backend created or adopted.
type box struct {
	st *state
	// proc is the init when this Backend started it (so it must reap it);
	// nil when adopted.
	proc *os.Process
	// busy is set while Create or Destroy works on the sandbox.
	busy bool

	mu       sync.Mutex
	cpuUsage int64 // ns, at cpuTime
	cpuTime  time.Time
}

// New returns a Backend. It takes the id ranges of every sandbox a
// previous run left a state directory for, so they are never handed out
// twice; call Reclaim and Adopt to deal with those sandboxes.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h, err := findHierarchies(cfg.CgroupFS)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	mkfs, err := findMkfs()
	if err != nil {
		return nil, fmt.Errorf("local: %w: %w", desktop.ErrUnavailable, err)
	}
	if err := prepareStateDir(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	b := &Backend{
		cfg:     cfg,
		log:     cfg.Logger,
		h:       h,
		mkfs:    mkfs,
		boxes:   map[string]*box{},
		slots:   map[int]string{},
		watches: map[string]*os.File{},
		exited:  make(chan string, 64),
		done:    make(chan struct{}),
	}
	if err := b.loadSlots(); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	return b, nil
}

// prepareStateDir creates dir. A sandbox's init, running as the sandbox's
// root (an unprivileged host id), passes through it to its staging
// directory, so it and every parent must be searchable by others.
func prepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("state directory: %s is not searchable by others (mode %v): %w", d, st.Mode().Perm(), desktop.ErrInvalid)
		}
		if d == "/" {
			return nil
		}
	}
}

// Destroy stops sandbox id and removes everything it holds. An id this
// Backend does not know is looked up on disk and in the cgroups, so the
// leftovers of a sandbox that was never adopted go too.
func (b *Backend) Destroy(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("local: destroy %q: %w: bad id", id, desktop.ErrInvalid)
	}
	b.mu.Lock()
	bx := b.boxes[id]
	if bx != nil && bx.busy {
		b.mu.Unlock()
		return fmt.Errorf("local: destroy %s: %w: being created or destroyed", id, desktop.ErrConflict)
	}
	var proc *os.Process
	if bx != nil {
		bx.busy = true
		proc = bx.proc
	}
	b.mu.Unlock()
	b.unwatch(id)
	start := time.Now()
	err := b.teardown(ctx, id, proc, func() {
		b.mu.Lock()
		bx.proc = nil
		b.mu.Unlock()
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if bx != nil {
			bx.busy = false
		}
		return fmt.Errorf("local: destroy %s: %w", id, err)
	}
	delete(b.boxes, id)
	b.freeSlot(id)
	b.log.Info("sandbox destroyed", "sandbox_id", id, "duration_ms", time.Since(start).Milliseconds())
	return nil
}

// teardown kills every process of sandbox id and removes its cgroups,
// network, loop device and state directory, in that order. When proc (the
// init, our child) is given, it is reaped and reaped is called. It works from
// names alone, so it also cleans up after a partial Create or a crash. The
// state directory goes last: while it exists, Reclaim finds the sandbox.
func (b *Backend) teardown(ctx context.Context, id string, proc *os.Process, reaped func()) error {
	ctx = context.WithoutCancel(ctx)
	ctx, cancel := context.WithTimeout(ctx, teardownTimeout)
	defer cancel()
	g := b.h.groups(b.cfg.CgroupRoot, id)
	var errs []error
	if err := g.kill(ctx); err != nil {
		errs = append(errs, err)
	}
	if proc != nil {
		// Our child: make sure it is dead, then reap it.
		proc.Kill()
		if err := reap(ctx, proc.Pid); err != nil {
			errs = append(errs, err)
		} else {
			proc.Release()
			reaped()
		}
	}
	if err := g.remove(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := b.cfg.Network.Teardown(ctx, id); err != nil {
		errs = append(errs, err)
	}
	dir := b.dir(id)
	if err := waitLoopsGone(ctx, dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}

// get returns the box of id, or an ErrNotFound error when there is none or
// it is being created or destroyed.
func (b *Backend) get(op, id string) (*box, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bx := b.boxes[id]
	if bx == nil || bx.busy {
		return nil, fmt.Errorf("local: %s %s: %w", op, id, desktop.ErrNotFound)
	}
	return bx, nil
}

// Pause freezes every process of sandbox id.
func (b *Backend) Pause(ctx context.Context, id string) error {
	if _, err := b.get("pause", id); err != nil {
		return err
	}
	if err := b.h.groups(b.cfg.CgroupRoot, id).freeze(ctx, true); err != nil {
		return fmt.Errorf("local: pause %s: %w", id, err)
	}
	return nil
}

// Resume thaws the processes of sandbox id.
func (b *Backend) Resume(ctx context.Context, id string) error {
	if _, err := b.get("resume", id); err != nil {
		return err
	}
	if err := b.h.groups(b.cfg.CgroupRoot, id).freeze(ctx, false); err != nil {
		return fmt.Errorf("local: resume %s: %w", id, err)
	}
	return nil
}

// SetNetwork replaces the egress policy of sandbox id.
func (b *Backend) SetNetwork(ctx context.Context, id string, p sandbox.NetworkPolicy) error {
	if _, err := b.get("set network", id); err != nil {
		return err
	}
	if err := b.cfg.Network.Apply(ctx, id, p); err != nil {
		return fmt.Errorf("local: set network %s: %w", id, err)
	}
	return nil
}

// Adopt takes over a sandbox a previous run created. It fails with
// desktop.ErrNotFound when the sandbox's init no longer runs (a pid with
// another start time is another process).
func (b *Backend) Adopt(ctx context.Context, inst sandbox.Instance) error {
	st, err := decodeState(inst.State)
	if err != nil {
		return fmt.Errorf("local: adopt %s: %w", inst.ID, err)
	}
	if st.ID != inst.ID || st.Slot < 0 || st.Slot >= b.cfg.IDRanges || b.hostBase(st.Slot) != st.HostBase {
		return fmt.Errorf("local: adopt %s: %w: state does not match this backend", inst.ID, desktop.ErrInvalid)
	}
	st.InitPID, st.InitStart = inst.InitPID, inst.InitStart
	if !alive(st.InitPID, st.InitStart) {
		return fmt.Errorf("local: adopt %s: init %d is gone: %w", inst.ID, inst.InitPID, desktop.ErrNotFound)
	}
	g := b.h.groups(b.cfg.CgroupRoot, st.ID)
	if !g.exists() {
		return fmt.Errorf("local: adopt %s: its cgroups are gone: %w", inst.ID, desktop.ErrNotFound)
	}
	if err := b.adopt(st, g); err != nil {
		return fmt.Errorf("local: adopt %s: %w", inst.ID, err)
	}
	b.watch(st.ID, st.InitPID)
	return nil
}

// adopt registers st, whose init runs, as a sandbox of this Backend.
func (b *Backend) adopt(st *state, g groups) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bx := b.boxes[st.ID]; bx != nil {
		if !bx.busy && bx.st.InitPID == st.InitPID && bx.st.InitStart == st.InitStart {
			return nil
		}
		return fmt.Errorf("%w: another sandbox has this id", desktop.ErrConflict)
	}
	if owner, taken := b.slots[st.Slot]; taken && owner != st.ID {
		return fmt.Errorf("%w: id range %d belongs to %s", desktop.ErrConflict, st.Slot, owner)
	}
	b.slots[st.Slot] = st.ID
	bx := &box{st: st, cpuTime: time.Now()}
	bx.cpuUsage, _ = b.cpuUsage(g)
	b.boxes[st.ID] = bx
	b.log.Info("sandbox adopted", "sandbox_id", st.ID, "init_pid", st.InitPID)
	return nil
}

// Reclaim removes every sandbox, running or not, whose id is not in keep
// and that this Backend does not hold (created or adopted): its processes,
// cgroups, loop device, state directory and network.
func (b *Backend) Reclaim(ctx context.Context, keep map[string]bool) error {
	found := map[string]bool{}
	ids, err := b.stateIDs()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: reclaim: %w", err)
	}
	more, err := b.h.ids(b.cfg.CgroupRoot)
	if err != nil {
		return fmt.Errorf("local: reclaim: %w", err)
	}
	ids = append(ids, more...)
	loops, err := loopsUnder(b.cfg.StateDir)
	if err != nil {
		return fmt.Errorf("local: reclaim: %w", err)
	}
	for _, dev := range loops {
		if id := loopSandbox(b.cfg.StateDir, dev); id != "" {
			ids = append(ids, id)
		}
	}
	b.mu.Lock()
	held := map[string]bool{}
	for id := range keep {
		held[id] = true
	}
	for id := range b.boxes {
		held[id] = true
	}
	b.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if held[id] || found[id] {
			continue
		}
		found[id] = true
		if err := b.teardown(ctx, id, nil, nil); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		b.mu.Lock()
		b.freeSlot(id)
		b.mu.Unlock()
		b.log.Info("sandbox reclaimed", "sandbox_id", id)
	}
	if err := b.cfg.Network.Reclaim(ctx, held); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("local: reclaim: %w", err)
	}
	return nil
}

// loopSandbox returns the id of the sandbox whose image backs the loop
// device dev, or "".
func loopSandbox(stateDir, dev string) string {
	data, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop/backing_file"))
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(stateDir, strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)"))
	if err != nil {
		return ""
	}
	id, _, _ := strings.Cut(rel, "/")
	if !validID(id) {
		return ""
	}
	return id
}
