package netpolicy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// quietManager is a Manager on a random small pool with no world around
// it, for tests that send no traffic.
func quietManager(t testing.TB, poolBits int) *Manager {
	t.Helper()
	requireRoot(t)
	pool := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(112 + rand.IntN(16)), byte(rand.IntN(256)), 0}), poolBits).Masked()
	return newTestManager(t, Config{
		Pool:      pool,
		Uplink:    "lo",
		Resolvers: []netip.Addr{},
		Prefix:    "q" + randName(4),
		NetNSDir:  filepath.Join(t.TempDir(), "netns"),
	})
}

// assertGone checks that nothing of sandbox id is left in the kernel.
func assertGone(t *testing.T, m *Manager, id string) {
	t.Helper()
	if l, err := netlink.LinkByName(m.vethName(id)); err == nil && l.Attrs().Alias == m.nsName(id) {
		t.Errorf("%s: veth %s still exists", id, m.vethName(id))
	}
	if _, err := os.Lstat(m.nsPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: netns file %s: got err %v, want not exist", id, m.nsPath(id), err)
	}
	if mountedAt(t, m.nsPath(id)) {
		t.Errorf("%s: %s is still mounted", id, m.nsPath(id))
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	objs, entries, err := m.rules.sandboxObjects(c)
	if err != nil {
		t.Fatalf("list nftables objects: %v", err)
	}
	if objs[id] {
		t.Errorf("%s: nftables chain or set left", id)
	}
	for veth, owner := range entries {
		if owner == id || veth == m.vethName(id) {
			t.Errorf("%s: map entry %s -> %s left", id, veth, owner)
		}
	}
	m.mu.Lock()
	_, held := m.ids[id]
	m.mu.Unlock()
	if held {
		t.Errorf("%s: address still allocated", id)
	}
}

// assertClean checks that the manager owns nothing at all.
func assertClean(t *testing.T, m *Manager) {
	t.Helper()
	left, unmarked, err := m.leftovers()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 || len(unmarked) > 0 {
		t.Errorf("leftovers: %q, unmarked veths %q", left, unmarked)
	}
	nets, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) > 0 {
		t.Errorf("List: got %d networks, want none", len(nets))
	}
	for _, mnt := range mountsUnder(t, m.cfg.NetNSDir) {
		t.Errorf("mount left: %s", mnt)
	}
	links, err := netlink.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, m.cfg.Prefix) {
			t.Errorf("link left: %s", l.Attrs().Name)
		}
	}
}

func mountedAt(t *testing.T, path string) bool {
	t.Helper()
	for _, p := range mountsUnder(t, filepath.Dir(path)) {
		if p == path {
			return true
		}
	}
	return false
}

// mountsUnder lists the mount points strictly below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	return out
}

func TestTeardownLeavesNothing(t *testing.T) {
	m := quietManager(t, 24)
	ctx := context.Background()
	id := newID()
	n, err := m.Setup(ctx, id)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if err := m.Apply(ctx, id, sandbox.NetworkPolicy{AllowOut: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got, err := m.Lookup(ctx, id)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if *got != *n {
		t.Errorf("Lookup: got %+v, want %+v", got, n)
	}
	if _, err := m.Setup(ctx, id); !errors.Is(err, desktop.ErrConflict) {
		t.Errorf("second Setup: got %v, want ErrConflict", err)
	}
	if _, err := os.Stat(n.NetNSPath); err != nil {
		t.Errorf("a failed second Setup touched the first: %v", err)
	}

	if err := m.Teardown(ctx, id); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	assertGone(t, m, id)
	if err := m.Teardown(ctx, id); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	if _, err := m.Lookup(ctx, id); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("Lookup after Teardown: got %v, want ErrNotFound", err)
	}
	if err := m.Apply(ctx, id, sandbox.NetworkPolicy{}); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("Apply after Teardown: got %v, want ErrNotFound", err)
	}
	// The id can be used again.
	if _, err := m.Setup(ctx, id); err != nil {
		t.Fatalf("Setup again: %v", err)
	}
	if err := m.Teardown(ctx, id); err != nil {
		t.Fatalf("Teardown again: %v", err)
	}
	assertClean(t, m)
}

func TestSetupErrors(t *testing.T) {
	m := quietManager(t, 28) // four /30s
	ctx := context.Background()
	for _, id := range []string{"", "ABC", "a-b", "a/b", strings.Repeat("a", 33)} {
		if _, err := m.Setup(ctx, id); !errors.Is(err, desktop.ErrInvalid) {
			t.Errorf("Setup(%q): got %v, want ErrInvalid", id, err)
		}
	}
	var ids []string
	for range 4 {
		n, err := m.Setup(ctx, newID())
		if err != nil {
			t.Fatalf("Setup: %v", err)
		}
		ids = append(ids, n.ID)
	}
	if _, err := m.Setup(ctx, newID()); !errors.Is(err, desktop.ErrUnavailable) {
		t.Errorf("Setup on a full pool: got %v, want ErrUnavailable", err)
	}
	// A veth name (prefix + 8 characters of the id) that is taken.
	clash := ids[0][:vethIDLen] + randName(12)
	if err := m.Teardown(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Setup(ctx, clash); !errors.Is(err, desktop.ErrConflict) {
		t.Errorf("Setup with a taken veth name: got %v, want ErrConflict", err)
	}
	assertGone(t, m, clash)
	if _, err := m.Lookup(ctx, ids[0]); err != nil {
		t.Errorf("the clash hurt the first sandbox: %v", err)
	}
	if err := m.Reclaim(ctx, nil); err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	assertClean(t, m)
}

// TestReclaim: a restarted Manager learns the addresses in use, and
// Reclaim removes what crashed setups left, complete or not.
func TestReclaim(t *testing.T) {
	w := newWorld(t)
	m1 := w.manager(t)
	ctx := context.Background()
	old, err := m1.Setup(ctx, newID())
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}

	// The server "crashes" and starts again.
	m2, err := New(m1.cfg)
	if err != nil {
		t.Fatalf("New after crash: %v", err)
	}
	got, err := m2.Lookup(ctx, old.ID)
	if err != nil || *got != *old {
		t.Fatalf("Lookup after restart: got %+v, %v; want %+v", got, err, old)
	}
	kept, err := m2.Setup(ctx, newID())
	if err != nil {
		t.Fatalf("Setup after restart: %v", err)
	}
	if kept.Addr == old.Addr {
		t.Fatalf("restarted manager reused %s", old.Addr)
	}
	if err := m2.Apply(ctx, kept.ID, sandbox.NetworkPolicy{Internet: true}); err != nil {
		t.Fatal(err)
	}

	// Half-done setups: only a namespace file; only nftables objects; only
	// a veth; a veth not yet marked with its id.
	nsOnly, nftOnly, vethOnly, unmarked := newID(), newID(), newID(), newID()
	if err := createNetNS(m2.nsPath(nsOnly)); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.rules.addSandbox(c, nftOnly, m2.vethName(nftOnly), netip.MustParseAddr("100.64.0.2"), sandbox.NetworkPolicy{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("add nftables objects: %v", err)
	}
	for _, id := range []string{vethOnly, unmarked} {
		name := m2.vethName(id)
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name},
			PeerName: "x" + randName(8)}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if l, err := netlink.LinkByName(name); err == nil {
				netlink.LinkDel(l)
			}
		})
	}
	if l, err := netlink.LinkByName(m2.vethName(vethOnly)); err != nil {
		t.Fatal(err)
	} else if err := netlink.LinkSetAlias(l, m2.nsName(vethOnly)); err != nil {
		t.Fatal(err)
	}
	left, unmarkedVeths, err := m2.leftovers()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{old.ID, kept.ID, nsOnly, nftOnly, vethOnly} {
		if !slices.Contains(left, id) {
			t.Errorf("leftovers %q miss %s", left, id)
		}
	}
	if want := []string{m2.vethName(unmarked)}; !slices.Equal(unmarkedVeths, want) {
		t.Errorf("unmarked veths: got %q, want %q", unmarkedVeths, want)
	}

	if err := m2.Reclaim(ctx, map[string]bool{kept.ID: true}); err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	for _, id := range []string{old.ID, nsOnly, nftOnly, vethOnly} {
		assertGone(t, m2, id)
	}
	if _, err := netlink.LinkByName(m2.vethName(unmarked)); err == nil {
		t.Errorf("unmarked veth %s left", m2.vethName(unmarked))
	}
	nets, err := m2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 1 || *nets[0] != *kept {
		t.Errorf("List after Reclaim: got %v, want only %+v", nets, kept)
	}
	// The kept sandbox still works.
	checkTCP(t, kept, netip.AddrPortFrom(w.inet[0], serverPort), reached)
}

// TestCycles: 100 setups and teardowns from several goroutines at once
// never hand one address to two live sandboxes and leave nothing behind.
func TestCycles(t *testing.T) {
	m := quietManager(t, 24)
	ctx := context.Background()
	const workers, cycles = 4, 100
	var (
		mu   sync.Mutex
		live = map[netip.Addr]string{}
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range cycles / workers {
				n, err := m.Setup(ctx, newID())
				if err != nil {
					fail(fmt.Errorf("worker %d cycle %d: Setup: %w", w, i, err))
					return
				}
				mu.Lock()
				if other, ok := live[n.Addr]; ok {
					errs = append(errs, fmt.Errorf("%s given to %s and %s", n.Addr, other, n.ID))
				}
				live[n.Addr] = n.ID
				mu.Unlock()
				if err := m.Apply(ctx, n.ID, sandbox.NetworkPolicy{Internet: i%2 == 0}); err != nil {
					fail(fmt.Errorf("Apply: %w", err))
				}
				mu.Lock()
				delete(live, n.Addr)
				mu.Unlock()
				if err := m.Teardown(ctx, n.ID); err != nil {
					fail(fmt.Errorf("Teardown: %w", err))
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	assertClean(t, m)
	checkThreadsHome(t)
}

// checkThreadsHome checks that no thread of the process was left in
// another network namespace.
func checkThreadsHome(t *testing.T) {
	t.Helper()
	want, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		got, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err != nil {
			continue // the thread exited
		}
		if got != want {
			t.Errorf("thread %s is in %s, want %s", task.Name(), got, want)
		}
	}
}

func TestEnter(t *testing.T) {
	m := quietManager(t, 28)
	ctx := context.Background()
	n, err := m.Setup(ctx, newID())
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := n.Enter(func() (err error) {
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatalf("Enter: %v", err)
	}
	if inside == host {
		t.Errorf("Enter ran fn in the host netns %s", host)
	}
	want := errors.New("from fn")
	if err := n.Enter(func() error { return want }); !errors.Is(err, want) {
		t.Errorf("Enter: got %v, want fn's error", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic of fn", r)
			}
		}()
		n.Enter(func() error { panic("boom") })
	}()
	checkThreadsHome(t)
}
