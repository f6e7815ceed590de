package netpolicy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Probe timeouts. A reachable server answers at once on loopback-speed
// veths; these only bound how long a probe of a dropped (not refused)
// destination waits before it counts as blocked.
const (
	reachTimeout = 10 * time.Second
	blockTimeout = 1500 * time.Millisecond
	serverPort   = 8080
	udpPort      = 9000
	dnsPort      = 53
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veths and nftables rules")
	}
}

func randName(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[rand.IntN(len(chars))]
	}
	return string(b)
}

// newID returns a sandbox id as the sandbox package makes them.
func newID() string { return randName(20) }

// world is a test's own network around the host: an "internet" namespace
// on a random /24 of the benchmark range 198.18.0.0/15 (with the metadata
// address 169.254.169.254 too), a "private" namespace on a random 10.x/24,
// and a policy routing rule that sends everything from the test's pool into
// those two namespaces only, so no probe can leave the machine whatever the
// firewall does.
type world struct {
	tag       string // random, shared by every name of this world
	pool      netip.Prefix
	inetNet   netip.Prefix // 198.18.X.0/24 or 198.19.X.0/24
	inetHost  netip.Addr   // host side of the internet link: X.254
	inet      []netip.Addr // .1 .2 .3 inside the internet namespace
	metadata  netip.Addr
	privNet   netip.Prefix
	privHost  netip.Addr // 10.A.B.254, a host address
	priv      netip.Addr // 10.A.B.1 inside the private namespace
	inetVeth  string
	privVeth  string
	inetNS    string
	privNS    string
	nsDir     string
	routeTab  int
	rulePrio  int
	hostLoop  netip.AddrPort // a service on the host's loopback
	hostInetL netip.AddrPort // a service on the host's internet-side address
}

func newWorld(t *testing.T) *world {
	t.Helper()
	requireRoot(t)
	tag := randName(4)
	x := rand.IntN(512)
	w := &world{
		tag:      tag,
		pool:     netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(112 + rand.IntN(16)), byte(16 * rand.IntN(16)), 0}), 20),
		inetNet:  netip.PrefixFrom(netip.AddrFrom4([4]byte{198, byte(18 + x/256), byte(x % 256), 0}), 24),
		metadata: netip.MustParseAddr("169.254.169.254"),
		privNet:  netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + rand.IntN(100)), byte(rand.IntN(256)), 0}), 24),
		inetVeth: "x" + tag + "i",
		privVeth: "x" + tag + "p",
		nsDir:    t.TempDir(),
		routeTab: 0x7000_0000 + rand.IntN(0x0fff_ffff),
		rulePrio: 1000 + rand.IntN(9000),
	}
	b := w.inetNet.Addr().As4()
	for i := byte(1); i <= 3; i++ {
		w.inet = append(w.inet, netip.AddrFrom4([4]byte{b[0], b[1], b[2], i}))
	}
	w.inetHost = netip.AddrFrom4([4]byte{b[0], b[1], b[2], 254})
	p := w.privNet.Addr().As4()
	w.priv = netip.AddrFrom4([4]byte{p[0], p[1], p[2], 1})
	w.privHost = netip.AddrFrom4([4]byte{p[0], p[1], p[2], 254})
	w.inetNS = filepath.Join(w.nsDir, "inet")
	w.privNS = filepath.Join(w.nsDir, "priv")

	for _, ns := range []string{w.inetNS, w.privNS} {
		if err := createNetNS(ns); err != nil {
			t.Fatalf("create netns: %v", err)
		}
		t.Cleanup(func() {
			if err := removeNetNS(ns); err != nil {
				t.Errorf("remove netns %s: %v", ns, err)
			}
		})
	}
	w.link(t, w.inetVeth, w.inetNS, w.inetHost, append(w.inet, w.metadata), w.inetNet)
	w.link(t, w.privVeth, w.privNS, w.privHost, []netip.Addr{w.priv}, w.privNet)

	// Replies from the private namespace come back to the pool unNATed.
	h := nsHandle(t, w.privNS)
	gw := net.IP(w.privHost.AsSlice())
	if err := h.RouteAdd(&netlink.Route{Dst: prefixNet(w.pool), Gw: gw}); err != nil {
		t.Fatalf("route back from private netns: %v", err)
	}

	// Everything from the pool is routed into the two namespaces only;
	// the pool itself falls through to the main table.
	routes := []*netlink.Route{
		{Table: w.routeTab, Dst: prefixNet(w.privNet), LinkIndex: linkIndex(t, w.privVeth), Scope: netlink.SCOPE_LINK},
		{Table: w.routeTab, Gw: net.IP(w.inet[0].AsSlice()), LinkIndex: linkIndex(t, w.inetVeth)},
		{Table: w.routeTab, Dst: prefixNet(w.pool), Type: unix.RTN_THROW},
	}
	for _, r := range routes {
		if err := netlink.RouteAdd(r); err != nil {
			t.Fatalf("route %v: %v", r, err)
		}
	}
	t.Cleanup(func() {
		// The other routes went with the veths.
		if err := netlink.RouteDel(routes[2]); err != nil {
			t.Errorf("delete throw route: %v", err)
		}
	})
	rule := netlink.NewRule()
	rule.Src = prefixNet(w.pool)
	rule.Table = w.routeTab
	rule.Priority = w.rulePrio
	rule.Family = netlink.FAMILY_V4
	if err := netlink.RuleAdd(rule); err != nil {
		t.Fatalf("add rule: %v", err)
	}
	t.Cleanup(func() {
		if err := netlink.RuleDel(rule); err != nil {
			t.Errorf("delete rule: %v", err)
		}
	})

	// Servers: banners and UDP echo everywhere, "DNS" (UDP echo on port
	// 53) on the private resolver and on a host address.
	for _, a := range append(w.inet, w.metadata) {
		startTCP(t, w.inetNS, netip.AddrPortFrom(a, serverPort))
	}
	for _, a := range w.inet {
		startUDP(t, w.inetNS, netip.AddrPortFrom(a, udpPort))
	}
	startTCP(t, w.privNS, netip.AddrPortFrom(w.priv, serverPort))
	startUDP(t, w.privNS, netip.AddrPortFrom(w.priv, dnsPort))
	startUDP(t, w.privNS, netip.AddrPortFrom(w.priv, udpPort))
	w.hostInetL = startTCP(t, "", netip.AddrPortFrom(w.inetHost, serverPort))
	startUDP(t, "", netip.AddrPortFrom(w.inetHost, dnsPort))
	w.hostLoop = startTCP(t, "", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0))
	return w
}

// link connects the host to a namespace of the world: the host side gets
// host in subnet, the namespace side eth0 gets addrs (the first in subnet,
// the rest as /32s).
func (w *world) link(t *testing.T, veth, nsPath string, host netip.Addr, addrs []netip.Addr, subnet netip.Prefix) {
	t.Helper()
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: veth},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}); err != nil {
		t.Fatalf("add veth %s: %v", veth, err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(veth); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("delete veth %s: %v", veth, err)
			}
		}
	})
	l, err := netlink.LinkByName(veth)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(host, subnet.Bits())}); err != nil {
		t.Fatalf("address %s: %v", veth, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	h := nsHandle(t, nsPath)
	for _, name := range []string{"lo", "eth0"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range addrs {
		bits := 32
		if i == 0 {
			bits = subnet.Bits()
		}
		if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(a, bits)}); err != nil {
			t.Fatalf("address %s in %s: %v", a, nsPath, err)
		}
	}
}

func nsHandle(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func linkIndex(t *testing.T, name string) int {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

func prefixNet(p netip.Prefix) *net.IPNet { return ipNet(p.Addr(), p.Bits()) }

// manager makes a Manager of the world: its own prefix, pool and netns
// directory, the internet link as uplink, the private address and a host
// address as resolvers. Cleanup reclaims everything and deletes the table.
func (w *world) manager(t *testing.T) *Manager {
	t.Helper()
	return newTestManager(t, Config{
		Pool:      w.pool,
		Uplink:    w.inetVeth,
		Resolvers: []netip.Addr{w.priv, w.inetHost},
		Prefix:    "n" + w.tag,
		NetNSDir:  filepath.Join(w.nsDir, "sandboxes"),
	})
}

func newTestManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Reclaim(context.Background(), nil); err != nil {
			t.Errorf("final Reclaim: %v", err)
		}
		c, err := nftables.New()
		if err == nil {
			c.DelTable(m.rules.table)
			err = c.Flush()
		}
		if err != nil {
			t.Errorf("delete table: %v", err)
		}
		if err := unix.Unmount(m.cfg.NetNSDir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount netns dir: %v", err)
		}
	})
	return m
}

// startTCP serves a banner, the listen address, to every connection. In
// nsPath's namespace, or the host's when it is "". It returns the address
// it listens on.
func startTCP(t *testing.T, nsPath string, ap netip.AddrPort) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	listen := func() (err error) {
		ln, err = net.Listen("tcp4", ap.String())
		return err
	}
	if err := inNS(nsPath, listen); err != nil {
		t.Fatalf("listen %s in %q: %v", ap, nsPath, err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", ap.Addr())
			c.Close()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return addr
}

// startUDP echoes every datagram back.
func startUDP(t *testing.T, nsPath string, ap netip.AddrPort) {
	t.Helper()
	var pc net.PacketConn
	listen := func() (err error) {
		pc, err = net.ListenPacket("udp4", ap.String())
		return err
	}
	if err := inNS(nsPath, listen); err != nil {
		t.Fatalf("listen udp %s in %q: %v", ap, nsPath, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	})
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
}

func inNS(nsPath string, fn func() error) error {
	if nsPath == "" {
		return fn()
	}
	return enterNetNS(nsPath, fn)
}

// dialBanner connects from the sandbox to ap and returns the banner.
func dialBanner(n *Net, ap netip.AddrPort, timeout time.Duration) (string, error) {
	var banner string
	err := n.Enter(func() error {
		d := net.Dialer{Timeout: timeout}
		c, err := d.Dial("tcp4", ap.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		banner, err = bufio.NewReader(c).ReadString('\n')
		banner = strings.TrimSpace(banner)
		return err
	})
	return banner, err
}

// udpEcho sends datagrams from the sandbox to ap until one comes back or
// timeout passes.
func udpEcho(n *Net, ap netip.AddrPort, timeout time.Duration) error {
	return n.Enter(func() error {
		c, err := net.Dial("udp4", ap.String())
		if err != nil {
			return err
		}
		defer c.Close()
		deadline := time.Now().Add(timeout)
		want := "ping-" + randName(8)
		buf := make([]byte, 64)
		for time.Now().Before(deadline) {
			if _, err := c.Write([]byte(want)); err != nil {
				return err
			}
			next := time.Now().Add(200 * time.Millisecond)
			if next.After(deadline) {
				next = deadline
			}
			c.SetReadDeadline(next)
			k, err := c.Read(buf)
			if err == nil && string(buf[:k]) == want {
				return nil
			}
			var ne net.Error
			if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				return err
			}
		}
		return fmt.Errorf("no echo from %s in %v", ap, timeout)
	})
}

// expectation of a probe.
type expect int

const (
	reached expect = iota // the server's banner or echo came back
	refused               // failed at once: TCP reset / ICMP unreachable
	blocked               // failed, by reset or by silence
)

func (e expect) String() string {
	return [...]string{"reached", "refused", "blocked"}[e]
}

// checkTCP probes ap from the sandbox and reports a mismatch with want.
func checkTCP(t *testing.T, n *Net, ap netip.AddrPort, want expect) {
	t.Helper()
	timeout := reachTimeout
	if want == blocked {
		timeout = blockTimeout
	}
	banner, err := dialBanner(n, ap, timeout)
	switch want {
	case reached:
		if err != nil || banner != ap.Addr().String() {
			t.Errorf("tcp %s: got banner %q, err %v; want banner %q", ap, banner, err, ap.Addr())
		}
	case refused:
		if !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("tcp %s: got banner %q, err %v; want connection refused", ap, banner, err)
		}
	case blocked:
		if err == nil {
			t.Errorf("tcp %s: got banner %q; want no connection", ap, banner)
		}
	}
}

func checkUDP(t *testing.T, n *Net, ap netip.AddrPort, want expect) {
	t.Helper()
	timeout := reachTimeout
	if want != reached {
		timeout = blockTimeout
	}
	err := udpEcho(n, ap, timeout)
	if (err == nil) != (want == reached) {
		t.Errorf("udp %s: got err %v; want %v", ap, err, want)
	}
}
