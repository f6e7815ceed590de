package netpolicy

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/desktop"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero value takes the defaults", Config{}, true},
		{"small pool", Config{Pool: netip.MustParsePrefix("100.96.0.0/30")}, true},
		{"pool too small", Config{Pool: netip.MustParsePrefix("100.96.0.0/31")}, false},
		{"IPv6 pool", Config{Pool: netip.MustParsePrefix("fd00::/64")}, false},
		{"pool with host bits", Config{Pool: netip.MustParsePrefix("100.96.0.1/16")}, false},
		{"prefix of 7", Config{Prefix: "abcdefg"}, true},
		{"prefix too long", Config{Prefix: "abcdefgh"}, false},
		{"prefix with a dash", Config{Prefix: "c-b"}, false},
		{"prefix starting with a digit", Config{Prefix: "1cb"}, false},
		{"upper-case prefix", Config{Prefix: "CB"}, false},
		{"uplink", Config{Uplink: "eth0"}, true},
		{"uplink too long", Config{Uplink: "a234567890123456"}, false},
		{"uplink with the sandbox prefix", Config{Uplink: "cb0"}, false},
		{"IPv6 resolver", Config{Resolvers: []netip.Addr{netip.MustParseAddr("fd00::53")}}, false},
		{"IPv4 resolver", Config{Resolvers: []netip.Addr{netip.MustParseAddr("10.0.0.53")}}, true},
		{"relative netns dir", Config{NetNSDir: "run/netns"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok && err != nil {
				t.Errorf("Validate: %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, desktop.ErrInvalid) {
				t.Errorf("Validate: got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestTableName(t *testing.T) {
	if got := tableName(DefaultPrefix); got != "cubicle" {
		t.Errorf("tableName(%q) = %q, want cubicle", DefaultPrefix, got)
	}
	if got := tableName("xy1"); got != "cubicle_xy1" {
		t.Errorf("tableName(xy1) = %q, want cubicle_xy1", got)
	}
}

func TestResolvConfServers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "# comment\nsearch example.test\nnameserver 10.255.255.53\nnameserver 127.0.0.53\n" +
		"nameserver fd00::53\nnameserver 192.0.2.53 # trailing\nnameserver bogus\noptions edns0\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := resolvConfServers(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("10.255.255.53"), netip.MustParseAddr("192.0.2.53")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("resolvConfServers (-want +got):\n%s", diff)
	}
	got, err = resolvConfServers(filepath.Join(t.TempDir(), "missing"))
	if err != nil || len(got) != 0 {
		t.Errorf("missing file: got %v, %v; want none, nil", got, err)
	}
}
