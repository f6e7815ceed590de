package netpolicy

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// TestCrossSandbox is the network part of ISOLATION §6 test 10: sandbox A
// cannot reach sandbox B's address, even with it allow-listed, nor B's
// abstract unix sockets (where X11 listens).
func TestCrossSandbox(t *testing.T) {
	w := newWorld(t)
	m := w.manager(t)
	ctx := context.Background()
	a, err := m.Setup(ctx, newID())
	if err != nil {
		t.Fatalf("Setup A: %v", err)
	}
	b, err := m.Setup(ctx, newID())
	if err != nil {
		t.Fatalf("Setup B: %v", err)
	}
	if a.Addr == b.Addr || a.Gateway == b.Gateway {
		t.Fatalf("A and B share addresses: %+v %+v", a, b)
	}
	policy := sandbox.NetworkPolicy{Internet: true, AllowOut: []netip.Prefix{w.pool}}
	for _, n := range []*Net{a, b} {
		if err := m.Apply(ctx, n.ID, policy); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	bAgent := startTCP(t, b.NetNSPath, netip.AddrPortFrom(b.Addr, sandbox.AgentPort))
	checkTCP(t, b, bAgent, reached)
	checkTCP(t, a, bAgent, refused)
	// B's gateway is a host address.
	checkTCP(t, a, netip.AddrPortFrom(b.Gateway, serverPort), blocked)

	// The host (the server's proxy) reaches both.
	c, err := net.DialTimeout("tcp4", bAgent.String(), reachTimeout)
	if err != nil {
		t.Errorf("host dial B's agent: %v", err)
	} else {
		c.Close()
	}

	name := "@netpolicy-test-" + randName(8)
	var ln net.Listener
	if err := b.Enter(func() (err error) {
		ln, err = net.Listen("unix", name)
		return err
	}); err != nil {
		t.Fatalf("listen %s in B: %v", name, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	defer func() {
		ln.Close()
		wg.Wait()
	}()
	dialUnix := func(n *Net) error {
		dial := func() error {
			c, err := net.DialTimeout("unix", name, reachTimeout)
			if err == nil {
				c.Close()
			}
			return err
		}
		if n == nil {
			return dial()
		}
		return n.Enter(dial)
	}
	if err := dialUnix(b); err != nil {
		t.Errorf("dial %s from B: %v; want a connection", name, err)
	}
	if err := dialUnix(a); err == nil {
		t.Errorf("dial %s from A: connected; want no such socket", name)
	}
	if err := dialUnix(nil); err == nil {
		t.Errorf("dial %s from the host: connected; want no such socket", name)
	}
}
