package netpolicy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

func pfx(a netip.Addr, bits int) netip.Prefix { return netip.PrefixFrom(a, bits) }

// TestEgress is ISOLATION §6 test 6: allow and deny lists, internet on and
// off, the always-deny set, DNS to the resolvers, UDP.
func TestEgress(t *testing.T) {
	w := newWorld(t)
	m := w.manager(t)
	ctx := context.Background()
	n, err := m.Setup(ctx, newID())
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	// A host service on the sandbox's gateway address, which a wildcard
	// listener on the host would also expose.
	gwService := startTCP(t, "", netip.AddrPortFrom(n.Gateway, serverPort))

	tcp := func(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, serverPort) }
	udp := func(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, udpPort) }
	dns := func(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, dnsPort) }
	one, two, three := w.inet[0], w.inet[1], w.inet[2]

	type probe struct {
		udp  bool
		ap   netip.AddrPort
		want expect
	}
	tests := []struct {
		name   string
		policy sandbox.NetworkPolicy
		probes []probe
	}{{
		name:   "fresh sandbox denies everything",
		policy: sandbox.NetworkPolicy{},
		probes: []probe{{false, tcp(one), refused}, {true, udp(one), blocked}},
	}, {
		name:   "internet on",
		policy: sandbox.NetworkPolicy{Internet: true},
		probes: []probe{{false, tcp(one), reached}, {false, tcp(two), reached}, {true, udp(one), reached}},
	}, {
		name:   "internet off fails fast",
		policy: sandbox.NetworkPolicy{Internet: false},
		probes: []probe{{false, tcp(one), refused}, {false, tcp(three), refused}, {true, udp(one), blocked}},
	}, {
		name:   "allow list beats internet off",
		policy: sandbox.NetworkPolicy{AllowOut: []netip.Prefix{pfx(one, 32)}},
		probes: []probe{{false, tcp(one), reached}, {true, udp(one), reached},
			{false, tcp(two), refused}, {true, udp(two), blocked}},
	}, {
		name:   "deny list beats internet on",
		policy: sandbox.NetworkPolicy{Internet: true, DenyOut: []netip.Prefix{pfx(two, 32)}},
		probes: []probe{{false, tcp(one), reached}, {false, tcp(two), refused}, {true, udp(two), blocked},
			{true, udp(one), reached}},
	}, {
		name: "deny list beats allow list",
		policy: sandbox.NetworkPolicy{AllowOut: []netip.Prefix{w.inetNet},
			DenyOut: []netip.Prefix{pfx(two, 32)}},
		probes: []probe{{false, tcp(one), reached}, {false, tcp(three), reached}, {false, tcp(two), refused}},
	}, {
		name:   "deny everything as 0.0.0.0/0",
		policy: sandbox.NetworkPolicy{Internet: true, DenyOut: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}},
		probes: []probe{{false, tcp(one), refused}, {true, udp(one), blocked}},
	}, {
		name: "always denied even if allow-listed",
		policy: sandbox.NetworkPolicy{Internet: true, AllowOut: []netip.Prefix{
			pfx(w.metadata, 32), w.privNet, pfx(w.inetHost, 32), pfx(n.Gateway, 32),
			netip.MustParsePrefix("127.0.0.0/8"), w.pool, netip.MustParsePrefix("0.0.0.0/0"),
		}},
		probes: []probe{
			{false, tcp(w.metadata), refused},
			{false, tcp(w.priv), refused},
			{true, netip.AddrPortFrom(w.priv, udpPort), blocked},
			// Host addresses: dropped by the host's input chain.
			{false, w.hostInetL, blocked},
			{false, gwService, blocked},
			// The public internet still works under the same policy.
			{false, tcp(one), reached},
		},
	}, {
		name:   "DNS to the resolvers only, even with internet off",
		policy: sandbox.NetworkPolicy{},
		probes: []probe{
			{true, dns(w.priv), reached},
			{false, tcp(w.priv), refused},
			{true, dns(w.inetHost), reached},
			{false, w.hostInetL, blocked},
			{true, udp(one), blocked},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Apply(ctx, n.ID, tt.policy); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for _, p := range tt.probes {
				if p.udp {
					checkUDP(t, n, p.ap, p.want)
				} else {
					checkTCP(t, n, p.ap, p.want)
				}
			}
		})
	}

	t.Run("host loopback is not the sandbox's", func(t *testing.T) {
		if err := m.Apply(ctx, n.ID, sandbox.NetworkPolicy{Internet: true,
			AllowOut: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		// The host's service on 127.0.0.1 is reachable from the host...
		c, err := net.DialTimeout("tcp4", w.hostLoop.String(), reachTimeout)
		if err != nil {
			t.Fatalf("host dial %s: %v", w.hostLoop, err)
		}
		c.Close()
		// ...but from the sandbox 127.0.0.1 is its own loopback, where
		// nothing listens on that port.
		checkTCP(t, n, w.hostLoop, refused)
		// The host's wildcard-exposed services are dropped via any host
		// address.
		checkTCP(t, n, netip.AddrPortFrom(n.Gateway, w.hostLoop.Port()), blocked)
	})

	t.Run("sandbox loopback works", func(t *testing.T) {
		err := n.Enter(func() error {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer ln.Close()
			done := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					c.Close()
				}
				done <- err
			}()
			c, err := net.DialTimeout("tcp4", ln.Addr().String(), reachTimeout)
			if err != nil {
				ln.Close()
				<-done
				return err
			}
			c.Close()
			return <-done
		})
		if err != nil {
			t.Errorf("loopback in sandbox: %v", err)
		}
	})

	t.Run("host reaches the sandbox", func(t *testing.T) {
		// The server connects to the sandbox's agent: host -> sandbox must
		// work under any policy.
		if err := m.Apply(ctx, n.ID, sandbox.NetworkPolicy{}); err != nil {
			t.Fatal(err)
		}
		agent := startTCP(t, n.NetNSPath, netip.AddrPortFrom(n.Addr, sandbox.AgentPort))
		c, err := net.DialTimeout("tcp4", agent.String(), reachTimeout)
		if err != nil {
			t.Fatalf("host dial agent %s: %v", agent, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(reachTimeout))
		buf := make([]byte, 64)
		k, err := c.Read(buf)
		if got, want := string(buf[:k]), n.Addr.String()+"\n"; err != nil || got != want {
			t.Errorf("agent banner: got %q, err %v; want %q", got, err, want)
		}
	})

	t.Run("no IPv6", func(t *testing.T) {
		err := n.Enter(func() error {
			ifs, err := net.Interfaces()
			if err != nil {
				return err
			}
			for _, ifc := range ifs {
				addrs, err := ifc.Addrs()
				if err != nil {
					return err
				}
				for _, a := range addrs {
					ip, _, _ := net.ParseCIDR(a.String())
					if ip.To4() == nil && !ip.IsLoopback() {
						t.Errorf("sandbox has IPv6 address %s on %s", a, ifc.Name)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestApplyLive: a new policy applies to new connections at once, on a
// sandbox set up by an earlier Manager too.
func TestApplyLive(t *testing.T) {
	w := newWorld(t)
	m := w.manager(t)
	ctx := context.Background()
	n, err := m.Setup(ctx, newID())
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	ap := netip.AddrPortFrom(w.inet[0], serverPort)
	steps := []struct {
		policy sandbox.NetworkPolicy
		want   expect
	}{
		{sandbox.NetworkPolicy{}, refused},
		{sandbox.NetworkPolicy{AllowOut: []netip.Prefix{pfx(w.inet[0], 32)}}, reached},
		{sandbox.NetworkPolicy{Internet: true, DenyOut: []netip.Prefix{w.inetNet}}, refused},
		{sandbox.NetworkPolicy{Internet: true}, reached},
		{sandbox.NetworkPolicy{}, refused},
	}
	for i, s := range steps {
		if err := m.Apply(ctx, n.ID, s.policy); err != nil {
			t.Fatalf("step %d: Apply: %v", i, err)
		}
		checkTCP(t, n, ap, s.want)
	}

	// A Manager started later (a restarted server) polices the same
	// sandbox.
	m2, err := New(m.cfg)
	if err != nil {
		t.Fatalf("New again: %v", err)
	}
	if err := m2.Apply(ctx, n.ID, sandbox.NetworkPolicy{Internet: true}); err != nil {
		t.Fatalf("Apply from a new Manager: %v", err)
	}
	checkTCP(t, n, ap, reached)
	// New rewrites the shared chains and keeps the sandbox's.
	checkTCP(t, n, netip.AddrPortFrom(w.priv, serverPort), refused)

	if err := m.Apply(ctx, newID(), sandbox.NetworkPolicy{}); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("Apply to unknown id: got %v, want ErrNotFound", err)
	}
	if err := m.Apply(ctx, n.ID, sandbox.NetworkPolicy{AllowOut: []netip.Prefix{{}}}); !errors.Is(err, desktop.ErrInvalid) {
		t.Errorf("Apply with an invalid prefix: got %v, want ErrInvalid", err)
	}
}
