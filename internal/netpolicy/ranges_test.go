package netpolicy

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
)

func TestSpans4(t *testing.T) {
	p := netip.MustParsePrefix
	ip := func(s string) uint32 { return addrUint(netip.MustParseAddr(s)) }
	tests := []struct {
		name string
		in   []netip.Prefix
		want []span
	}{
		{"empty", nil, []span{}},
		{"one host", []netip.Prefix{p("1.2.3.4/32")}, []span{{ip("1.2.3.4"), ip("1.2.3.4")}}},
		{"host bits are masked", []netip.Prefix{p("1.2.3.4/24")}, []span{{ip("1.2.3.0"), ip("1.2.3.255")}}},
		{"overlap merges", []netip.Prefix{p("10.0.0.0/8"), p("10.1.2.3/32")}, []span{{ip("10.0.0.0"), ip("10.255.255.255")}}},
		{"adjacent merge", []netip.Prefix{p("224.0.0.0/4"), p("240.0.0.0/4")}, []span{{ip("224.0.0.0"), ip("255.255.255.255")}}},
		{"sorted", []netip.Prefix{p("9.0.0.0/8"), p("1.0.0.0/8")},
			[]span{{ip("1.0.0.0"), ip("1.255.255.255")}, {ip("9.0.0.0"), ip("9.255.255.255")}}},
		{"everything", []netip.Prefix{p("0.0.0.0/0"), p("8.8.8.8/32")}, []span{{0, ^uint32(0)}}},
		{"IPv6 skipped, mapped IPv4 kept", []netip.Prefix{p("fc00::/7"), p("::ffff:1.2.3.0/120")},
			[]span{{ip("1.2.3.0"), ip("1.2.3.255")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := spans4(tt.in)
			if got == nil {
				got = []span{}
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(span{})); diff != "" {
				t.Errorf("spans4(%v) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestIntervalElements(t *testing.T) {
	got := intervalElements([]span{{0x0a000000, 0x0affffff}, {0xe0000000, 0xffffffff}})
	want := []nftables.SetElement{
		{Key: []byte{10, 0, 0, 0}},
		{Key: []byte{11, 0, 0, 0}, IntervalEnd: true},
		// The last range reaches the top: no end element.
		{Key: []byte{224, 0, 0, 0}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("intervalElements (-want +got):\n%s", diff)
	}
}
