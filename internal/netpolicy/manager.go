package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// errExists marks a kernel object that is already there.
var errExists = fmt.Errorf("already exists: %w", desktop.ErrConflict)

// Net is a sandbox's network as set up on the host.
type Net struct {
	ID string
	// NetNSPath is the bind mount of the sandbox's network namespace.
	NetNSPath string
	// HostVeth is the host side of the sandbox's veth.
	HostVeth string
	// Addr is the sandbox's address on eth0; Gateway the host side's, and
	// the sandbox's default route.
	Addr    netip.Addr
	Gateway netip.Addr
}

// Enter runs fn on a locked OS thread switched into the sandbox's network
// namespace and restores the thread after (or ends it, if it cannot be
// restored). Sockets fn opens stay in the sandbox's namespace, and a
// process fn starts with os/exec begins in it. A panic in fn is raised
// again in the caller's goroutine.
func (n *Net) Enter(fn func() error) error {
	if err := enterNetNS(n.NetNSPath, fn); err != nil {
		return fmt.Errorf("netpolicy: enter %s: %w", n.ID, err)
	}
	return nil
}

// Manager sets up, polices and tears down sandbox networks. Its state is
// the kernel's: veths, namespace files and nftables objects named after
// the prefix and the sandbox id, so a new Manager picks up where a crashed
// one stopped. One Manager per prefix and host; its methods are safe for
// concurrent use.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	rules  *ruleset
	nslots uint32

	mu    sync.Mutex
	slots map[uint32]string // slot -> id
	ids   map[string]uint32 // id -> slot
	next  uint32
	locks map[string]*idLock
}

type idLock struct {
	mu   sync.Mutex
	refs int
}

// New checks cfg, fills its defaults, installs the shared nftables table,
// chains and sets (replacing their contents if they exist, keeping every
// sandbox's own), turns on IPv4 forwarding and learns which addresses
// existing sandboxes hold.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Uplink == "" {
		up, err := defaultUplink()
		if err != nil {
			return nil, fmt.Errorf("netpolicy: new: %w", err)
		}
		cfg.Uplink = up
		if up == "" {
			cfg.Logger.Warn("no IPv4 default route: masquerading out of every non-sandbox interface")
		}
	}
	if cfg.Resolvers == nil {
		rs, err := resolvConfServers("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("netpolicy: new: read resolv.conf: %w", err)
		}
		cfg.Resolvers = rs
	}
	m := &Manager{
		cfg:    cfg,
		log:    cfg.Logger,
		rules:  newRuleset(cfg),
		nslots: uint32(1) << (30 - cfg.Pool.Bits()),
		slots:  map[uint32]string{},
		ids:    map[string]uint32{},
		locks:  map[string]*idLock{},
	}
	if err := prepareNetNSDir(cfg.NetNSDir); err != nil {
		return nil, fmt.Errorf("netpolicy: new: %w", err)
	}
	if err := writeSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
		return nil, fmt.Errorf("netpolicy: new: %w", err)
	}
	byLink, err := hostAddrs4()
	if err != nil {
		return nil, fmt.Errorf("netpolicy: new: %w", err)
	}
	deny := append(alwaysDenied(), cfg.Pool)
	for _, as := range byLink {
		for _, a := range as {
			deny = append(deny, netip.PrefixFrom(a, 32))
		}
	}
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("netpolicy: new: nftables: %w", err)
	}
	if err := m.rules.install(c, deny, cfg.Resolvers); err != nil {
		return nil, fmt.Errorf("netpolicy: new: nftables: %w", err)
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("netpolicy: new: install table %s: %w", m.rules.table.Name, err)
	}
	if err := m.learn(byLink); err != nil {
		return nil, fmt.Errorf("netpolicy: new: %w", err)
	}
	return m, nil
}

// learn records the /30 of every existing sandbox veth.
func (m *Manager) learn(byLink map[int][]netip.Addr) error {
	veths, err := listVeths(m.cfg.Prefix)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range veths {
		if v.id == "" {
			continue
		}
		for _, a := range byLink[v.index] {
			if slot, ok := m.slotOf(a); ok {
				m.slots[slot] = v.id
				m.ids[v.id] = slot
			}
		}
	}
	return nil
}

// slotOf returns the slot whose host side is gw.
func (m *Manager) slotOf(gw netip.Addr) (uint32, bool) {
	if !m.cfg.Pool.Contains(gw) {
		return 0, false
	}
	off := addrUint(gw) - addrUint(m.cfg.Pool.Addr())
	if off%4 != 1 {
		return 0, false
	}
	return off / 4, true
}

// slotAddrs returns the host-side and sandbox addresses of a slot.
func (m *Manager) slotAddrs(slot uint32) (gw, addr netip.Addr) {
	base := addrUint(m.cfg.Pool.Addr()) + 4*slot
	return uintAddr(base + 1), uintAddr(base + 2)
}

func (m *Manager) reserve(id string) (uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ids[id]; ok {
		return 0, fmt.Errorf("sandbox %s: %w", id, errExists)
	}
	for i := uint32(0); i < m.nslots; i++ {
		slot := (m.next + i) % m.nslots
		if _, used := m.slots[slot]; !used {
			m.slots[slot] = id
			m.ids[id] = slot
			m.next = slot + 1
			return slot, nil
		}
	}
	return 0, fmt.Errorf("pool %s is full (%d sandboxes): %w", m.cfg.Pool, m.nslots, desktop.ErrUnavailable)
}

func (m *Manager) release(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if slot, ok := m.ids[id]; ok {
		delete(m.ids, id)
		delete(m.slots, slot)
	}
}

// lockID serialises the operations on one sandbox.
func (m *Manager) lockID(id string) (unlock func()) {
	m.mu.Lock()
	l := m.locks[id]
	if l == nil {
		l = &idLock{}
		m.locks[id] = l
	}
	l.refs++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.locks, id)
		}
		m.mu.Unlock()
	}
}

func (m *Manager) vethName(id string) string {
	if len(id) > vethIDLen {
		id = id[:vethIDLen]
	}
	return m.cfg.Prefix + id
}

func (m *Manager) nsName(id string) string { return m.cfg.Prefix + "-" + id }

func (m *Manager) nsPath(id string) string {
	return filepath.Join(m.cfg.NetNSDir, m.nsName(id))
}

// validID accepts what the sandbox package hands out: [a-z0-9], up to 32.
func validID(id string) error {
	if id == "" || len(id) > 32 || !isAlnum(id) {
		return fmt.Errorf("sandbox id %q: want 1 to 32 characters of [a-z0-9]: %w", id, desktop.ErrInvalid)
	}
	return nil
}

// Setup gives sandbox id its network: a network namespace owned by the
// host's user namespace (so root inside the sandbox's own user namespace
// cannot change it), bound at <NetNSDir>/<prefix>-<id>; a veth from the
// host into it as eth0 with a /30 of the pool and a default route; and an
// egress policy that denies everything until Apply says otherwise. It
// fails with desktop.ErrConflict when id is already set up (or its veth
// name, the first 8 characters of id, is taken) and desktop.ErrUnavailable
// when the pool is full. On failure it leaves nothing behind.
func (m *Manager) Setup(ctx context.Context, id string) (_ *Net, err error) {
	if err := validID(id); err != nil {
		return nil, fmt.Errorf("netpolicy: setup: %w", err)
	}
	start := time.Now()
	unlock := m.lockID(id)
	defer unlock()

	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	slot, err := m.reserve(id)
	if err != nil {
		return nil, fmt.Errorf("netpolicy: setup: %w", err)
	}
	undo = append(undo, func() { m.release(id) })
	gw, addr := m.slotAddrs(slot)
	n := &Net{ID: id, NetNSPath: m.nsPath(id), HostVeth: m.vethName(id), Addr: addr, Gateway: gw}

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("netpolicy: setup %s: %w", id, err)
	}
	if err := createNetNS(n.NetNSPath); err != nil {
		if errors.Is(err, os.ErrExist) {
			err = fmt.Errorf("netns %s: %w", n.NetNSPath, errExists)
		}
		return nil, fmt.Errorf("netpolicy: setup %s: %w", id, err)
	}
	undo = append(undo, func() {
		if err := removeNetNS(n.NetNSPath); err != nil {
			m.log.Warn("undo setup: remove netns", "sandbox_id", id, "err", err)
		}
	})
	ns, err := netns.GetFromPath(n.NetNSPath)
	if err != nil {
		return nil, fmt.Errorf("netpolicy: setup %s: open netns: %w", id, err)
	}
	defer ns.Close()

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("netpolicy: setup %s: %w", id, err)
	}
	if err := createVeth(n.HostVeth, m.nsName(id), ns, gw, addr); err != nil {
		// A veth of that name that is not ours must survive the undo.
		if !errors.Is(err, errExists) {
			undo = append(undo, func() {
				if err := deleteVeth(n.HostVeth, m.nsName(id)); err != nil {
					m.log.Warn("undo setup: delete veth", "sandbox_id", id, "err", err)
				}
			})
		}
		return nil, fmt.Errorf("netpolicy: setup %s: %w", id, err)
	}
	undo = append(undo, func() {
		if err := deleteVeth(n.HostVeth, m.nsName(id)); err != nil {
			m.log.Warn("undo setup: delete veth", "sandbox_id", id, "err", err)
		}
	})

	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("netpolicy: setup %s: nftables: %w", id, err)
	}
	if err := m.rules.addSandbox(c, id, n.HostVeth, addr, sandbox.NetworkPolicy{}); err != nil {
		return nil, fmt.Errorf("netpolicy: setup %s: nftables: %w", id, err)
	}
	if err := c.Flush(); err != nil {
		if errors.Is(err, unix.EEXIST) {
			err = fmt.Errorf("%w: %w", err, errExists)
		}
		return nil, fmt.Errorf("netpolicy: setup %s: nftables: %w", id, err)
	}
	undo = append(undo, func() {
		if err := m.removeRules(id, n.HostVeth); err != nil {
			m.log.Warn("undo setup: remove rules", "sandbox_id", id, "err", err)
		}
	})

	// Last, so that no packet passes before the policy is in place.
	if err := writeSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
		return nil, fmt.Errorf("netpolicy: setup %s: %w", id, err)
	}
	if err := linkUp(n.HostVeth); err != nil {
		return nil, fmt.Errorf("netpolicy: setup %s: %w", id, err)
	}
	m.log.Debug("network set up", "sandbox_id", id, "addr", addr.String(),
		"veth", n.HostVeth, "duration_ms", time.Since(start).Milliseconds())
	return n, nil
}

// Apply replaces sandbox id's egress policy in one nftables transaction.
// Connections already open are not cut; new ones follow p. The always-deny
// set wins over p.AllowOut. IPv6 prefixes in p change nothing: sandboxes
// have no IPv6 at all. It fails with desktop.ErrNotFound for an id that is
// not set up.
func (m *Manager) Apply(ctx context.Context, id string, p sandbox.NetworkPolicy) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("netpolicy: apply: %w", err)
	}
	for _, pfx := range append(slices.Clone(p.AllowOut), p.DenyOut...) {
		if !pfx.IsValid() {
			return fmt.Errorf("netpolicy: apply %s: invalid prefix: %w", id, desktop.ErrInvalid)
		}
	}
	unlock := m.lockID(id)
	defer unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("netpolicy: apply %s: %w", id, err)
	}
	m.mu.Lock()
	slot, ok := m.ids[id]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("netpolicy: apply %s: %w", id, desktop.ErrNotFound)
	}
	_, addr := m.slotAddrs(slot)
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netpolicy: apply %s: nftables: %w", id, err)
	}
	if err := m.rules.writePolicy(c, id, addr, p); err != nil {
		return fmt.Errorf("netpolicy: apply %s: %w", id, err)
	}
	if err := c.Flush(); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("netpolicy: apply %s: rules missing: %v: %w", id, err, desktop.ErrNotFound)
		}
		return fmt.Errorf("netpolicy: apply %s: %w", id, err)
	}
	return nil
}

// Teardown removes sandbox id's rules, veth and network namespace file.
// Tearing down an unknown or already removed id is not an error. Processes
// still inside the namespace keep it alive (without a way out) until they
// exit.
func (m *Manager) Teardown(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("netpolicy: teardown: %w", err)
	}
	start := time.Now()
	unlock := m.lockID(id)
	defer unlock()
	// ctx is not checked: a half teardown helps nobody.
	veth := m.vethName(id)
	var errs []error
	if err := m.removeRules(id, veth); err != nil {
		errs = append(errs, err)
	}
	if err := deleteVeth(veth, m.nsName(id)); err != nil {
		errs = append(errs, err)
	}
	if err := removeNetNS(m.nsPath(id)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netpolicy: teardown %s: %w", id, err)
	}
	m.release(id)
	m.log.Debug("network torn down", "sandbox_id", id, "duration_ms", time.Since(start).Milliseconds())
	return nil
}

// removeRules deletes a sandbox's nftables objects, whichever exist: one
// transaction when all do, one per object otherwise.
func (m *Manager) removeRules(id, veth string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := m.rules.removeSandbox(c, id, veth); err != nil {
		return err
	}
	err = c.Flush()
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return err
	}
	// Something was missing: a crashed setup or a second teardown.
	steps := []func(c *nftables.Conn) error{
		func(c *nftables.Conn) error {
			return c.SetDeleteElements(m.rules.vmap(), []nftables.SetElement{{Key: ifnameKey(veth)}})
		},
		func(c *nftables.Conn) error {
			ch := m.rules.chain(sandboxChainName(id))
			c.FlushChain(ch)
			c.DelChain(ch)
			return nil
		},
		func(c *nftables.Conn) error { c.DelSet(m.rules.ipv4Set(allowSetName(id))); return nil },
		func(c *nftables.Conn) error { c.DelSet(m.rules.ipv4Set(denySetName(id))); return nil },
	}
	for _, step := range steps {
		if err := step(c); err != nil {
			return err
		}
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("nftables: %w", err)
		}
	}
	return nil
}

// Lookup returns sandbox id's network as the kernel shows it, or an error
// of class desktop.ErrNotFound.
func (m *Manager) Lookup(ctx context.Context, id string) (*Net, error) {
	if err := validID(id); err != nil {
		return nil, fmt.Errorf("netpolicy: lookup: %w", err)
	}
	nets, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if n.ID == id {
			return n, nil
		}
	}
	return nil, fmt.Errorf("netpolicy: lookup %s: %w", id, desktop.ErrNotFound)
}

// List returns every sandbox network of this manager's prefix that has a
// veth with an address, sorted by id.
func (m *Manager) List(ctx context.Context) ([]*Net, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("netpolicy: list: %w", err)
	}
	veths, err := listVeths(m.cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("netpolicy: list: %w", err)
	}
	byLink, err := hostAddrs4()
	if err != nil {
		return nil, fmt.Errorf("netpolicy: list: %w", err)
	}
	var out []*Net
	for _, v := range veths {
		if v.id == "" {
			continue
		}
		for _, a := range byLink[v.index] {
			slot, ok := m.slotOf(a)
			if !ok {
				continue
			}
			gw, addr := m.slotAddrs(slot)
			out = append(out, &Net{ID: v.id, NetNSPath: m.nsPath(v.id), HostVeth: v.name, Addr: addr, Gateway: gw})
			break
		}
	}
	slices.SortFunc(out, func(a, b *Net) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Reclaim tears down every sandbox network of this prefix whose id is not
// in keep: veths, namespace files and nftables objects left by a crash,
// complete or not.
func (m *Manager) Reclaim(ctx context.Context, keep map[string]bool) error {
	found, unmarked, err := m.leftovers()
	if err != nil {
		return fmt.Errorf("netpolicy: reclaim: %w", err)
	}
	var errs []error
	for _, name := range unmarked {
		m.log.Warn("reclaiming unmarked veth", "veth", name)
		if err := deleteVeth(name, ""); err != nil {
			errs = append(errs, err)
		}
	}
	for _, id := range found {
		if keep[id] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("netpolicy: reclaim: %w", err)
		}
		m.log.Warn("reclaiming sandbox network", "sandbox_id", id)
		if err := m.Teardown(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netpolicy: reclaim: %w", err)
	}
	return nil
}

// leftovers lists the ids that own anything of this prefix in the kernel,
// and the veths of a setup that stopped before marking them with an id
// (none of which belongs to a setup this Manager is running).
func (m *Manager) leftovers() (ids []string, unmarked []string, err error) {
	found := map[string]bool{}
	veths, err := listVeths(m.cfg.Prefix)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	busy := map[string]bool{}
	for id := range m.ids {
		busy[m.vethName(id)] = true
		found[id] = true
	}
	m.mu.Unlock()
	for _, v := range veths {
		switch {
		case v.id != "":
			found[v.id] = true
		case !busy[v.name]:
			unmarked = append(unmarked, v.name)
		}
	}
	entries, err := os.ReadDir(m.cfg.NetNSDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	for _, e := range entries {
		if id, ok := strings.CutPrefix(e.Name(), m.cfg.Prefix+"-"); ok && validID(id) == nil {
			found[id] = true
		}
	}
	c, err := nftables.New()
	if err != nil {
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	objs, mapped, err := m.rules.sandboxObjects(c)
	if err != nil {
		return nil, nil, err
	}
	for id := range objs {
		found[id] = true
	}
	for _, id := range mapped {
		found[id] = true
	}
	for id := range found {
		if validID(id) == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	slices.Sort(unmarked)
	return ids, unmarked, nil
}
