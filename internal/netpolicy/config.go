package netpolicy

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Defaults for the zero fields of a Config.
const (
	DefaultPrefix   = "cb"
	DefaultTable    = "cubicle"
	DefaultNetNSDir = "/run/cubicle/netns"
	// DefaultPool is part of the shared (carrier-grade NAT) range, which
	// the always-deny set covers, so one sandbox can never reach another.
	DefaultPool = "100.96.0.0/16"
)

// maxPrefixLen keeps "<prefix><8 characters of the id>" within the
// kernel's 15-byte interface names.
const maxPrefixLen = unix.IFNAMSIZ - 1 - vethIDLen

// Config says where sandbox networks come from. The zero value of every
// field takes the default named on it.
type Config struct {
	// Pool is split into /30s, one per sandbox: the host side of its veth
	// takes .1 and the sandbox .2 of each. Default 100.96.0.0/16 (16,384
	// sandboxes). IPv4 only.
	Pool netip.Prefix
	// Uplink is the interface sandbox traffic leaves the host by, and is
	// masqueraded on. Default: the interface of the IPv4 default route, or,
	// when there is none, every interface that is not a sandbox's.
	Uplink string
	// Resolvers are the DNS servers sandboxes may reach on port 53 (UDP and
	// TCP), even when they are private or host addresses. Nil means the
	// IPv4 nameservers of /etc/resolv.conf that are not loopback addresses
	// (a sandbox cannot reach the host's loopback); empty means none.
	// Sandboxes have no IPv6, so only IPv4 resolvers are allowed.
	Resolvers []netip.Addr
	// Prefix names what belongs to this manager: host-side veths are
	// <Prefix><first 8 characters of the id>, netns files <Prefix>-<id>.
	// Default "cb". At most 7 characters of [a-z0-9], starting with a
	// letter. Two managers on one host need prefixes neither of which
	// starts the other.
	Prefix string
	// NetNSDir holds the network namespaces' bind mounts. Default
	// /run/cubicle/netns.
	NetNSDir string
	// Logger receives debug records of setups and teardowns and warnings
	// about what Reclaim removed. Default: discard.
	Logger *slog.Logger
}

// Validate reports whether c, with its defaults filled in, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	if !c.Pool.IsValid() || !c.Pool.Addr().Is4() || c.Pool.Bits() > 30 || c.Pool.Bits() < 8 {
		return fmt.Errorf("netpolicy: config: pool %s: want an IPv4 prefix from /8 to /30: %w", c.Pool, desktop.ErrInvalid)
	}
	if c.Pool != c.Pool.Masked() {
		return fmt.Errorf("netpolicy: config: pool %s has host bits set: %w", c.Pool, desktop.ErrInvalid)
	}
	if err := checkPrefix(c.Prefix); err != nil {
		return fmt.Errorf("netpolicy: config: %w", err)
	}
	if len(c.Uplink) > unix.IFNAMSIZ-1 || strings.ContainsAny(c.Uplink, "/ \x00") {
		return fmt.Errorf("netpolicy: config: uplink %q is not an interface name: %w", c.Uplink, desktop.ErrInvalid)
	}
	if c.Uplink != "" && strings.HasPrefix(c.Uplink, c.Prefix) {
		return fmt.Errorf("netpolicy: config: uplink %q has the sandbox prefix %q: %w", c.Uplink, c.Prefix, desktop.ErrInvalid)
	}
	for _, r := range c.Resolvers {
		if !r.Is4() && !r.Is4In6() {
			return fmt.Errorf("netpolicy: config: resolver %s: sandboxes have no IPv6, want an IPv4 address: %w", r, desktop.ErrInvalid)
		}
	}
	if !strings.HasPrefix(c.NetNSDir, "/") {
		return fmt.Errorf("netpolicy: config: netns dir %q is not absolute: %w", c.NetNSDir, desktop.ErrInvalid)
	}
	return nil
}

func checkPrefix(p string) error {
	if p == "" || len(p) > maxPrefixLen {
		return fmt.Errorf("prefix %q: want 1 to %d characters: %w", p, maxPrefixLen, desktop.ErrInvalid)
	}
	if p[0] < 'a' || p[0] > 'z' {
		return fmt.Errorf("prefix %q: want a lower-case letter first: %w", p, desktop.ErrInvalid)
	}
	if !isAlnum(p) {
		return fmt.Errorf("prefix %q: want only [a-z0-9]: %w", p, desktop.ErrInvalid)
	}
	return nil
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// withDefaults fills the zero fields that need no look-up.
func (c Config) withDefaults() Config {
	if !c.Pool.IsValid() {
		c.Pool = netip.MustParsePrefix(DefaultPool)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.NetNSDir == "" {
		c.NetNSDir = DefaultNetNSDir
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// tableName is the nftables table of the prefix: "cubicle" for the default
// prefix, "cubicle_<prefix>" for others, so managers with different
// prefixes never touch each other's rules.
func tableName(prefix string) string {
	if prefix == DefaultPrefix {
		return DefaultTable
	}
	return DefaultTable + "_" + prefix
}

// defaultUplink is the interface of the IPv4 default route in the main
// table, or "" when there is none.
func defaultUplink() (string, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return "", fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.LinkIndex == 0 {
			continue
		}
		l, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			return "", fmt.Errorf("default route link %d: %w", r.LinkIndex, err)
		}
		return l.Attrs().Name, nil
	}
	return "", nil
}

// resolvConfServers reads the IPv4, non-loopback nameservers of a
// resolv.conf file. A missing file gives none.
func resolvConfServers(path string) ([]netip.Addr, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		a = a.Unmap()
		if a.Is4() && !a.IsLoopback() {
			out = append(out, a)
		}
	}
	return out, sc.Err()
}
