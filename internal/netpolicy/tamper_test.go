package netpolicy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

const tamperEnv = "NETPOLICY_TAMPER_CHILD"

// tamperResult is one attempt of the tamper child: the errno it got, or ""
// when the attempt succeeded.
type tamperResult struct {
	Op    string `json:"op"`
	Errno string `json:"errno"`
	Msg   string `json:"msg,omitempty"`
}

// TestTamperHelper is not a test: it is the process TestTamper starts as
// root of a new user namespace inside a sandbox's network namespace. It
// tries to change the network and reports each outcome on stdout.
func TestTamperHelper(t *testing.T) {
	if os.Getenv(tamperEnv) != "1" {
		t.Skip("runs only as the child of TestTamper")
	}
	var results []tamperResult
	try := func(op string, fn func() error) {
		r := tamperResult{Op: op}
		if err := fn(); err != nil {
			var errno unix.Errno
			if errors.As(err, &errno) {
				r.Errno = unix.ErrnoName(errno)
			} else {
				r.Errno = "?"
			}
			r.Msg = err.Error()
		}
		results = append(results, r)
	}
	try("uid is 0", func() error {
		if os.Getuid() != 0 {
			return fmt.Errorf("uid %d", os.Getuid())
		}
		return nil
	})
	eth0, err := netlink.LinkByName(sandboxIfName)
	if err != nil {
		t.Fatalf("find eth0: %v", err)
	}
	addrs, err := netlink.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil || len(addrs) == 0 {
		t.Fatalf("eth0 addresses: %v %v", addrs, err)
	}
	routes, err := netlink.RouteList(eth0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("routes: %v", err)
	}
	var def *netlink.Route
	for i := range routes {
		if routes[i].Dst == nil || routes[i].Dst.IP.IsUnspecified() {
			def = &routes[i]
		}
	}
	if def == nil {
		t.Fatalf("no default route in %v", routes)
	}

	try("ip addr add", func() error {
		return netlink.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(netip.MustParseAddr("198.18.255.9"), 24)})
	})
	try("ip addr del", func() error { return netlink.AddrDel(eth0, &addrs[0]) })
	try("ip route del default", func() error { return netlink.RouteDel(def) })
	try("ip route add", func() error {
		_, dst, _ := net.ParseCIDR("0.0.0.0/1")
		return netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: def.Gw, LinkIndex: eth0.Attrs().Index})
	})
	try("ip link set eth0 down", func() error { return netlink.LinkSetDown(eth0) })
	try("ip link add", func() error {
		return netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "tamper0"}})
	})
	try("nft flush ruleset", func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		c.FlushRuleset()
		return c.Flush()
	})
	try("nft add table", func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "tamper"})
		return c.Flush()
	})
	// iptables (legacy) needs a raw socket for its setsockopt.
	try("raw socket", func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err == nil {
			unix.Close(fd)
		}
		return err
	})
	try("open sysctl for writing", func() error {
		f, err := os.OpenFile("/proc/sys/net/ipv4/conf/eth0/forwarding", os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		return err
	})
	try("setns to the host netns", func() error {
		f, err := os.Open("/proc/1/ns/net")
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
	})
	out, err := json.Marshal(results)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("TAMPER %s\n", out)
}

// TestTamper is ISOLATION §6 test 9: root in a new user namespace joined
// to the sandbox's network namespace cannot change addresses, routes,
// links or nftables, and the policy holds after trying.
func TestTamper(t *testing.T) {
	w := newWorld(t)
	m := w.manager(t)
	ctx := context.Background()
	n, err := m.Setup(ctx, newID())
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	allowed := netip.AddrPortFrom(w.inet[0], serverPort)
	denied := netip.AddrPortFrom(w.inet[1], serverPort)
	if err := m.Apply(ctx, n.ID, sandbox.NetworkPolicy{AllowOut: []netip.Prefix{pfx(w.inet[0], 32)}}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	checkTCP(t, n, allowed, reached)
	checkTCP(t, n, denied, refused)

	bin := copyTestBinary(t)
	hostID := uint32(3_000_000 + rand.IntN(1_000_000))
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err = n.Enter(func() error {
		cmd := exec.CommandContext(cctx, bin, "-test.run=^TestTamperHelper$", "-test.count=1")
		cmd.Dir = filepath.Dir(bin)
		cmd.Env = append(os.Environ(), tamperEnv+"=1")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.WaitDelay = 5 * time.Second
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(hostID), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(hostID), Size: 1}},
			Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
			Setpgid:     true,
			Pdeathsig:   syscall.SIGKILL,
		}
		return cmd.Run()
	})
	if err != nil {
		t.Fatalf("tamper child: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	results := parseTamper(t, &stdout)

	wantErrno := map[string][]string{
		"uid is 0":                {""},
		"ip addr add":             {"EPERM"},
		"ip addr del":             {"EPERM"},
		"ip route del default":    {"EPERM"},
		"ip route add":            {"EPERM"},
		"ip link set eth0 down":   {"EPERM"},
		"ip link add":             {"EPERM"},
		"nft flush ruleset":       {"EPERM"},
		"nft add table":           {"EPERM"},
		"raw socket":              {"EPERM"},
		"open sysctl for writing": {"EACCES", "EPERM"},
		"setns to the host netns": {"EACCES", "EPERM"},
	}
	seen := map[string]bool{}
	for _, r := range results {
		t.Logf("%s: errno %q", r.Op, r.Errno)
		seen[r.Op] = true
		want, ok := wantErrno[r.Op]
		if !ok {
			t.Errorf("unexpected op %q", r.Op)
			continue
		}
		if !slices.Contains(want, r.Errno) {
			t.Errorf("%s: got errno %q (%s), want one of %q", r.Op, r.Errno, r.Msg, want)
		}
	}
	for op := range wantErrno {
		if !seen[op] {
			t.Errorf("op %q not reported", op)
		}
	}

	// The network is as it was, and so is the policy.
	got, err := m.Lookup(ctx, n.ID)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if got.Addr != n.Addr || got.Gateway != n.Gateway {
		t.Errorf("after tamper: got addr %s gw %s, want %s %s", got.Addr, got.Gateway, n.Addr, n.Gateway)
	}
	checkTCP(t, n, allowed, reached)
	checkTCP(t, n, denied, refused)
	checkTCP(t, n, netip.AddrPortFrom(w.metadata, serverPort), refused)
}

func parseTamper(t *testing.T, r io.Reader) []tamperResult {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "TAMPER ")
		if !ok {
			continue
		}
		var out []tamperResult
		if err := json.Unmarshal([]byte(line), &out); err != nil {
			t.Fatalf("tamper output %q: %v", line, err)
		}
		return out
	}
	t.Fatal("tamper child printed no results")
	return nil
}

// copyTestBinary copies the running test binary where a user without host
// privileges can execute it.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "netpolicy-tamper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "netpolicy.test")
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}
