package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/cubicle-dev/cubicle/client"
)

// sandboxPool is the server's default address pool for sandboxes.
var sandboxPool = netip.MustParsePrefix("100.96.0.0/16")

// internet is a test's stand-in for the internet: a network namespace on
// a /24 of the benchmark range 198.18.0.0/15 with web servers on .1, .2
// and .3 and on the metadata address 169.254.169.254, joined to the host
// by a veth. A routing rule sends all sandbox traffic into it, so nothing
// a test sandbox sends can leave the machine; the server is started with
// the veth as its uplink.
type internet struct {
	veth    string         // host side; the server's --uplink
	host    netip.Addr     // host side address, .254
	servers []netip.Addr   // .1 .2 .3
	meta    netip.Addr     // 169.254.169.254 in the namespace
	subnet  netip.Prefix   // 198.18.X.0/24
	hostWeb netip.AddrPort // a web server on the host side address
}

// newInternet builds the namespace, its servers and the routing, all
// removed at cleanup.
func newInternet(t *testing.T) *internet {
	t.Helper()
	// The routing rule takes the traffic of every sandbox on the host: one
	// such internet at a time, even across test processes. The lock goes
	// last, after everything below is removed.
	if err := os.MkdirAll("/run/cubicle", 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile("/run/cubicle/test-internet.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	tag := make([]byte, 3)
	rand.Read(tag)
	x := int(tag[0])<<8 | int(tag[1])
	w := &internet{
		veth:   "xe" + hex.EncodeToString(tag),
		subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, byte(18 + x%2), byte(x >> 8), 0}), 24),
		meta:   netip.MustParseAddr("169.254.169.254"),
	}
	b := w.subnet.Addr().As4()
	for i := byte(1); i <= 3; i++ {
		w.servers = append(w.servers, netip.AddrFrom4([4]byte{b[0], b[1], b[2], i}))
	}
	w.host = netip.AddrFrom4([4]byte{b[0], b[1], b[2], 254})

	ns := newNamedlessNetNS(t)
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: w.veth},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(w.veth); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("delete veth %s: %v", w.veth, err)
			}
		}
	})
	l, err := netlink.LinkByName(w.veth)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(w.host, 24)}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, name := range []string{"lo", "eth0"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	eth0, _ := h.LinkByName("eth0")
	for i, a := range append(append([]netip.Addr(nil), w.servers...), w.meta) {
		bits := 32
		if i == 0 {
			bits = 24
		}
		if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(a, bits)}); err != nil {
			t.Fatalf("address %s: %v", a, err)
		}
	}
	for _, a := range append(append([]netip.Addr(nil), w.servers...), w.meta) {
		serveWeb(t, ns, netip.AddrPortFrom(a, 80))
		serveUDPEcho(t, ns, netip.AddrPortFrom(a, 7))
	}
	w.hostWeb = serveWeb(t, netns.None(), netip.AddrPortFrom(w.host, 0))

	// Sandbox traffic goes into the namespace and nowhere else.
	table := 0x6000_0000 + x
	routes := []*netlink.Route{
		{Table: table, Gw: net.IP(w.servers[0].AsSlice()), LinkIndex: l.Attrs().Index},
		{Table: table, Dst: ipNet(sandboxPool.Addr(), sandboxPool.Bits()), Type: 9 /* RTN_THROW */},
	}
	for _, r := range routes {
		if err := netlink.RouteAdd(r); err != nil {
			t.Fatalf("route %v: %v", r, err)
		}
	}
	t.Cleanup(func() { netlink.RouteDel(routes[1]) })
	rule := netlink.NewRule()
	rule.Src = ipNet(sandboxPool.Addr(), sandboxPool.Bits())
	rule.Table = table
	rule.Priority = 900 + x%100
	rule.Family = netlink.FAMILY_V4
	if err := netlink.RuleAdd(rule); err != nil {
		t.Fatalf("add rule: %v", err)
	}
	t.Cleanup(func() {
		if err := netlink.RuleDel(rule); err != nil {
			t.Errorf("delete rule: %v", err)
		}
	})
	return w
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}

// newNamedlessNetNS makes a network namespace that lives as long as the
// returned handle, closed at cleanup.
func newNamedlessNetNS(t *testing.T) netns.NsHandle {
	t.Helper()
	var ns netns.NsHandle
	inNetNS(t, netns.None(), func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if ns, err = netns.New(); err != nil {
			return err
		}
		return netns.Set(orig)
	})
	t.Cleanup(func() { ns.Close() })
	return ns
}

// inNetNS runs fn on a thread of its own in ns (netns.None(): this one's).
// The thread is thrown away afterwards.
func inNetNS(t *testing.T, ns netns.NsHandle, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if ns.IsOpen() {
			if err := netns.Set(ns); err != nil {
				errc <- err
				return
			}
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// serveWeb answers every request on ap (in ns) with "web <address>".
func serveWeb(t *testing.T, ns netns.NsHandle, ap netip.AddrPort) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	inNetNS(t, ns, func() (err error) {
		ln, err = net.Listen("tcp4", ap.String())
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf)
				body := "web " + ap.Addr().String()
				fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// serveUDPEcho echoes datagrams on ap in ns.
func serveUDPEcho(t *testing.T, ns netns.NsHandle, ap netip.AddrPort) {
	t.Helper()
	var pc net.PacketConn
	inNetNS(t, ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", ap.String())
		return err
	})
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// Outcomes of a probe from inside a sandbox.
const (
	reached = "reached"
	refused = "refused" // an immediate error: the policy rejects
	blocked = "blocked" // no answer
)

// probeScript prints reached, refused or blocked for a TCP (web) or UDP
// (echo) probe of addr from inside a sandbox.
func probeScript(udp bool, ap netip.AddrPort) string {
	if udp {
		return fmt.Sprintf(`python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
try:
    s.sendto(b"ping", (%q, %d)); s.recv(64); print("reached")
except socket.timeout: print("blocked")
except OSError: print("refused")
PY`, ap.Addr().String(), ap.Port())
	}
	return fmt.Sprintf(`out=$(curl -sS -m 3 http://%s/ 2>&1); rc=$?
case $rc in 0) echo reached;; 7) echo refused;; 28) echo blocked;; *) echo "curl $rc: $out";; esac`, ap)
}

// egress checks the outbound policy set through the API, at create and
// live, against the test's internet.
func egress(t *testing.T, c *client.Server, w *internet, stateDir string) {
	ctx := context.Background()
	one, two, three := w.servers[0], w.servers[1], w.servers[2]
	web := func(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 80) }
	echo := func(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 7) }
	pfx := func(a netip.Addr) string { return netip.PrefixFrom(a, 32).String() }

	sbx, err := c.Create(ctx, client.CreateOptions{Network: &client.Network{Internet: false, AllowOut: []string{pfx(three)}}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	defer c.Kill(ctx, sbx.ID())
	log := initLog(t, stateDir, sbx.ID())
	defer func() {
		if t.Failed() {
			t.Logf("the sandbox's init log:\n%s", log())
		}
	}()

	type probe struct {
		udp  bool
		ap   netip.AddrPort
		want string
	}
	steps := []struct {
		name   string
		policy *client.Network // nil: as created
		probes []probe
	}{{
		name:   "internet off with an allow list, as created",
		probes: []probe{{false, web(three), reached}, {false, web(one), refused}, {true, echo(one), blocked}, {true, echo(three), reached}},
	}, {
		name:   "internet on",
		policy: &client.Network{Internet: true},
		probes: []probe{{false, web(one), reached}, {false, web(two), reached}, {true, echo(two), reached}},
	}, {
		name:   "deny list beats internet on",
		policy: &client.Network{Internet: true, DenyOut: []string{pfx(two)}},
		probes: []probe{{false, web(one), reached}, {false, web(two), refused}, {true, echo(two), blocked}},
	}, {
		name: "always denied even if allow-listed",
		policy: &client.Network{Internet: true, AllowOut: []string{pfx(w.meta), pfx(w.host), "10.0.0.0/8",
			"172.16.0.0/12", "192.168.0.0/16", sandboxPool.String(), "127.0.0.0/8", "0.0.0.0/0"}},
		probes: []probe{{false, web(w.meta), refused}, {false, w.hostWeb, blocked}, {false, web(one), reached}},
	}, {
		name:   "no network fails at once",
		policy: &client.Network{Internet: false},
		probes: []probe{{false, web(one), refused}, {false, web(three), refused}, {true, echo(one), blocked}},
	}}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.policy != nil {
				if err := sbx.SetNetwork(ctx, *st.policy); err != nil {
					t.Fatalf("set network: %v", err)
				}
			}
			for _, p := range st.probes {
				for _, user := range []string{"", "root"} {
					got := strings.TrimSpace(mustInside(t, sbx, user, probeScript(p.udp, p.ap)))
					if got != p.want {
						t.Errorf("%s %v as %q: %s, want %s", map[bool]string{false: "tcp", true: "udp"}[p.udp], p.ap, user, got, p.want)
					}
				}
			}
		})
	}
	if info, err := sbx.Info(ctx); err != nil || info.Network.Internet {
		t.Errorf("after the last update: network %+v, %v; want internet off", info.Network, err)
	}
}
