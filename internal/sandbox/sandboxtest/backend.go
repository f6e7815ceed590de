// Package sandboxtest has fakes of the interfaces package sandbox consumes
// (a Backend whose sandboxes run a real little HTTP agent, a Store, a
// template set), an in-memory network for testing/synctest bubbles, and the
// conformance suites that every implementation of Backend and Store passes.
package sandboxtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// Options configure a fake Backend.
type Options struct {
	// Net, when set, is where agents listen and are reached. Without it
	// each sandbox gets its own loopback address 127.x.y.z and its agent
	// listens on TCP port sandbox.AgentPort there, as a real one does on
	// its veth.
	Net *Network
	// ReadyAfter is how long a new agent answers "not ready".
	ReadyAfter time.Duration
}

// Backend is a fake sandbox.Backend. Its sandboxes are records in memory,
// each with a real HTTP agent, and they outlive any server that uses the
// Backend, as real ones do: a test restarts the server on the same
// Backend to exercise adoption.
type Backend struct {
	opts Options

	mu        sync.Mutex
	boxes     map[string]*box
	leftovers map[string]bool // crashed sandboxes not yet reclaimed
	reclaimed []string
	failNext  map[string]error
	nextPID   int
	nextAddr  uint32
	exited    chan string
}

type box struct {
	spec    sandbox.Spec
	inst    sandbox.Instance
	agent   *agent
	paused  bool
	network sandbox.NetworkPolicy
}

var (
	_ sandbox.Backend     = (*Backend)(nil)
	_ sandbox.ExitWatcher = (*Backend)(nil)
)

// NewBackend returns a fake backend with no sandboxes. Close stops what
// runs when the test is done.
func NewBackend(opts Options) *Backend {
	return &Backend{
		opts:      opts,
		boxes:     make(map[string]*box),
		leftovers: make(map[string]bool),
		failNext:  make(map[string]error),
		nextPID:   4_000_000,
		exited:    make(chan string, 64),
	}
}

// Close stops every sandbox's agent.
func (b *Backend) Close() {
	b.mu.Lock()
	boxes := b.boxes
	b.boxes = make(map[string]*box)
	b.mu.Unlock()
	for _, bx := range boxes {
		bx.agent.stop()
	}
}

// FailNext makes the next call of op ("create", "destroy", "pause",
// "resume", "set_network", "stats", "adopt", "reclaim") fail with err.
func (b *Backend) FailNext(op string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failNext[op] = err
}

// SetReadyAfter changes how long the agents of new sandboxes take to be
// ready.
func (b *Backend) SetReadyAfter(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opts.ReadyAfter = d
}

func (b *Backend) fail(op string) error {
	err := b.failNext[op]
	delete(b.failNext, op)
	return err
}

func gone(id string) error {
	return fmt.Errorf("fake backend: sandbox %s: %w", id, desktop.ErrNotFound)
}

// Create starts a fake sandbox and its agent.
func (b *Backend) Create(ctx context.Context, spec sandbox.Spec) (*sandbox.Instance, error) {
	if err := checkSpec(spec); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fake backend: create %s: %w", spec.ID, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.fail("create"); err != nil {
		return nil, err
	}
	if _, ok := b.boxes[spec.ID]; ok {
		return nil, fmt.Errorf("fake backend: create %s: %w", spec.ID, desktop.ErrConflict)
	}
	addr, ln, err := b.listen()
	if err != nil {
		return nil, fmt.Errorf("fake backend: create %s: %w", spec.ID, err)
	}
	b.nextPID++
	state, _ := json.Marshal(map[string]string{"fake": spec.ID})
	inst := sandbox.Instance{
		ID:        spec.ID,
		InitPID:   b.nextPID,
		InitStart: rand.Uint64N(1 << 40),
		Addr:      addr,
		State:     state,
		Started:   time.Now().UTC(),
	}
	b.boxes[spec.ID] = &box{
		spec:    spec,
		inst:    inst,
		agent:   startAgent(ln, envValue(spec.Env, "CUBICLE_AGENT_TOKEN"), b.opts.ReadyAfter),
		network: spec.Network,
	}
	out := inst
	return &out, nil
}

// listen picks the sandbox's address and listens on its agent port.
func (b *Backend) listen() (netip.Addr, net.Listener, error) {
	if b.opts.Net != nil {
		b.nextAddr++
		n := b.nextAddr
		addr := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
		ln, err := b.opts.Net.Listen(netip.AddrPortFrom(addr, sandbox.AgentPort).String())
		return addr, ln, err
	}
	var lastErr error
	for range 50 {
		addr := netip.AddrFrom4([4]byte{127, byte(64 + rand.IntN(128)), byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
		ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, sandbox.AgentPort).String())
		if err == nil {
			return addr, ln, nil
		}
		lastErr = err
	}
	return netip.Addr{}, nil, fmt.Errorf("no free loopback address: %w", lastErr)
}

// checkSpec refuses what a real backend could not run.
func checkSpec(s sandbox.Spec) error {
	switch {
	case !sandbox.ValidID(s.ID):
		return fmt.Errorf("fake backend: bad sandbox id %q: %w", s.ID, desktop.ErrInvalid)
	case s.RootFS == "":
		return fmt.Errorf("fake backend: %s: no root filesystem: %w", s.ID, desktop.ErrInvalid)
	case s.Agent == "":
		return fmt.Errorf("fake backend: %s: no agent binary: %w", s.ID, desktop.ErrInvalid)
	case len(s.AgentArgs) > 0 && s.AgentArgs[0] == "agent":
		return fmt.Errorf("fake backend: %s: the agent arguments start with the subcommand, which the backend adds: %w", s.ID, desktop.ErrInvalid)
	}
	return nil
}

// envValue returns the value of key in env (KEY=value entries; the last
// one wins, as for exec).
func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// Destroy stops the sandbox; an unknown id is not an error.
func (b *Backend) Destroy(ctx context.Context, id string) error {
	b.mu.Lock()
	if err := b.fail("destroy"); err != nil {
		b.mu.Unlock()
		return err
	}
	bx := b.boxes[id]
	delete(b.boxes, id)
	delete(b.leftovers, id)
	b.mu.Unlock()
	if bx != nil {
		bx.agent.stop()
	}
	return nil
}

// running returns the live box id, with b.mu held.
func (b *Backend) running(op, id string) (*box, error) {
	if err := b.fail(op); err != nil {
		return nil, err
	}
	bx := b.boxes[id]
	if bx == nil {
		return nil, gone(id)
	}
	return bx, nil
}

// Pause freezes the sandbox: its agent stops answering.
func (b *Backend) Pause(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bx, err := b.running("pause", id)
	if err != nil {
		return err
	}
	bx.paused = true
	bx.agent.pause()
	return nil
}

// Resume thaws the sandbox.
func (b *Backend) Resume(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bx, err := b.running("resume", id)
	if err != nil {
		return err
	}
	bx.paused = false
	bx.agent.resume()
	return nil
}

// SetNetwork records the sandbox's egress policy.
func (b *Backend) SetNetwork(ctx context.Context, id string, p sandbox.NetworkPolicy) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bx, err := b.running("set_network", id)
	if err != nil {
		return err
	}
	bx.network = p
	return nil
}

// Stats reports made-up resource use that follows the sandbox's limits.
func (b *Backend) Stats(ctx context.Context, id string) (sandbox.Stats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bx, err := b.running("stats", id)
	if err != nil {
		return sandbox.Stats{}, err
	}
	st := sandbox.Stats{CPUCount: 1, CPUUsedPct: 1.5, MemUsed: 150 << 20, MemTotal: 2048 << 20, MemCache: 20 << 20,
		DiskUsed: 10 << 20, DiskTotal: 4096 << 20}
	if l := bx.spec.Limits; l.CPUs > 1 {
		st.CPUCount = int(l.CPUs + 0.999)
	}
	if l := bx.spec.Limits; l.MemoryMB > 0 {
		st.MemTotal = int64(l.MemoryMB) << 20
	}
	return st, nil
}

// Adopt succeeds for a sandbox that runs and is the one inst describes.
func (b *Backend) Adopt(ctx context.Context, inst sandbox.Instance) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bx, err := b.running("adopt", inst.ID)
	if err != nil {
		return err
	}
	if bx.inst.InitPID != inst.InitPID || bx.inst.InitStart != inst.InitStart || bx.inst.Addr != inst.Addr {
		return fmt.Errorf("fake backend: adopt %s: init %d is not the sandbox's: %w", inst.ID, inst.InitPID, desktop.ErrNotFound)
	}
	return nil
}

// Reclaim removes every sandbox and leftover not in keep.
func (b *Backend) Reclaim(ctx context.Context, keep map[string]bool) error {
	b.mu.Lock()
	if err := b.fail("reclaim"); err != nil {
		b.mu.Unlock()
		return err
	}
	var stop []*agent
	for id, bx := range b.boxes {
		if !keep[id] {
			stop = append(stop, bx.agent)
			delete(b.boxes, id)
			b.reclaimed = append(b.reclaimed, id)
		}
	}
	for id := range b.leftovers {
		if !keep[id] {
			delete(b.leftovers, id)
			b.reclaimed = append(b.reclaimed, id)
		}
	}
	b.mu.Unlock()
	for _, a := range stop {
		a.stop()
	}
	return nil
}

// Crash makes the sandbox die on its own: its agent stops, its leftovers
// stay until Destroy or Reclaim, Adopt no longer finds it, and Exited
// reports it.
func (b *Backend) Crash(id string) {
	b.mu.Lock()
	bx := b.boxes[id]
	delete(b.boxes, id)
	if bx != nil {
		b.leftovers[id] = true
	}
	b.mu.Unlock()
	if bx != nil {
		bx.agent.stop()
		select {
		case b.exited <- id:
		default:
		}
	}
}

// Exited reports the sandboxes that Crash ended.
func (b *Backend) Exited() <-chan string { return b.exited }

// Running returns the ids of the sandboxes that run, sorted.
func (b *Backend) Running() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.boxes))
	for id := range b.boxes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Leftovers returns the ids of crashed sandboxes not reclaimed yet.
func (b *Backend) Leftovers() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for id := range b.leftovers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Reclaimed returns the ids Reclaim removed, in order.
func (b *Backend) Reclaimed() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.reclaimed)
}

// Sandbox returns what the backend knows of a running sandbox: its spec,
// whether it is paused and its current egress policy.
func (b *Backend) Sandbox(id string) (spec sandbox.Spec, paused bool, network sandbox.NetworkPolicy, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bx := b.boxes[id]
	if bx == nil {
		return sandbox.Spec{}, false, sandbox.NetworkPolicy{}, false
	}
	return bx.spec, bx.paused, bx.network, true
}

// Templates is a fake sandbox.Templates: names to root filesystems.
type Templates map[string]string

// Resolve returns template name, a root filesystem without environment.
func (t Templates) Resolve(name string) (sandbox.Template, error) {
	if p, ok := t[name]; ok {
		return sandbox.Template{RootFS: p}, nil
	}
	return sandbox.Template{}, desktop.Errorf(desktop.CodeNotFound, "template %s not found", strconv.Quote(name))
}
