package netpolicy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// vethIDLen is how many characters of a sandbox id name its veth.
const vethIDLen = 8

// sandboxIfName is the sandbox side of every veth, inside its namespace.
const sandboxIfName = "eth0"

// createVeth makes the pair: host side named host and marked with alias,
// the peer created directly inside the namespace ns as eth0. The host side
// gets gw and the peer addr, both in a /30; the peer's default route goes
// through gw. The host side is left down.
func createVeth(host, alias string, ns netns.NsHandle, gw, addr netip.Addr) error {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: host, Alias: alias},
		PeerName:      sandboxIfName,
		PeerNamespace: netlink.NsFd(ns),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add veth %s: %w", host, errExists)
		}
		return fmt.Errorf("add veth %s: %w", host, err)
	}
	link, err := netlink.LinkByName(host)
	if err != nil {
		return fmt.Errorf("find veth %s: %w", host, err)
	}
	if link.Attrs().Alias != alias {
		if err := netlink.LinkSetAlias(link, alias); err != nil {
			return fmt.Errorf("set alias of %s: %w", host, err)
		}
	}
	if err := writeSysctl("/proc/sys/net/ipv6/conf/"+host+"/disable_ipv6", "1"); err != nil {
		return err
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNet(gw, 30)}); err != nil {
		return fmt.Errorf("address %s: %w", host, err)
	}

	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in netns: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	peer, err := h.LinkByName(sandboxIfName)
	if err != nil {
		return fmt.Errorf("find %s: %w", sandboxIfName, err)
	}
	if err := h.AddrAdd(peer, &netlink.Addr{IPNet: ipNet(addr, 30)}); err != nil {
		return fmt.Errorf("address %s: %w", sandboxIfName, err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("%s up: %w", sandboxIfName, err)
	}
	if err := h.RouteAdd(&netlink.Route{
		LinkIndex: peer.Attrs().Index,
		Gw:        net.IP(gw.AsSlice()),
		Scope:     netlink.SCOPE_UNIVERSE,
	}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	return nil
}

// linkUp sets the host-side link up.
func linkUp(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	return nil
}

// deleteVeth removes the host side (and with it the peer) if it exists and
// carries alias, or no alias yet. A veth of the same name with another
// alias is another sandbox's.
func deleteVeth(host, alias string) error {
	link, err := netlink.LinkByName(host)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("find veth %s: %w", host, err)
	}
	if a := link.Attrs().Alias; a != alias && a != "" {
		return nil
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete veth %s: %w", host, err)
	}
	return nil
}

// ownedVeth is a host-side veth of this manager as the kernel shows it.
type ownedVeth struct {
	id    string // "" when a setup stopped before marking it
	name  string
	index int
}

// listVeths returns the veths of this prefix: those whose alias marks them
// with a sandbox id and, with an empty id, unmarked veths named like ours
// (the kernel ignores an alias given at creation, so there is a moment
// between creating a veth and marking it).
func listVeths(prefix string) ([]ownedVeth, error) {
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []ownedVeth
	for _, l := range links {
		a := l.Attrs()
		suffix, ok := strings.CutPrefix(a.Name, prefix)
		if !ok || l.Type() != "veth" || validID(suffix) != nil || len(suffix) > vethIDLen {
			continue
		}
		if a.Alias == "" {
			out = append(out, ownedVeth{name: a.Name, index: a.Index})
			continue
		}
		id, ok := strings.CutPrefix(a.Alias, prefix+"-")
		if !ok || validID(id) != nil || !strings.HasPrefix(id, suffix) {
			continue
		}
		out = append(out, ownedVeth{id: id, name: a.Name, index: a.Index})
	}
	return out, nil
}

// hostAddrs4 returns every IPv4 address of the host by interface index.
func hostAddrs4() (map[int][]netip.Addr, error) {
	addrs, err := retryDump(func() ([]netlink.Addr, error) {
		return netlink.AddrList(nil, netlink.FAMILY_V4)
	})
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	out := map[int][]netip.Addr{}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		out[a.LinkIndex] = append(out[a.LinkIndex], ip.Unmap())
	}
	return out, nil
}

// retryDump repeats a netlink dump that concurrent changes interrupted.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range 10 {
		var out []T
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, 32)}
}
