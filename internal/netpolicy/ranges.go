package netpolicy

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/google/nftables"
)

// span is an inclusive range of IPv4 addresses.
type span struct{ lo, hi uint32 }

// alwaysDenied returns the destinations no sandbox may reach, whatever its
// policy: private, shared (CGNAT, which holds the default pool), loopback,
// link-local and metadata, "this network", multicast and reserved ranges.
func alwaysDenied() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// spans4 turns the IPv4 prefixes of ps into sorted, disjoint, non-adjacent
// ranges. IPv4-mapped IPv6 prefixes count as IPv4; other IPv6 prefixes are
// skipped, since sandboxes have no IPv6.
func spans4(ps []netip.Prefix) []span {
	var out []span
	for _, p := range ps {
		p, ok := unmapPrefix(p)
		if !ok {
			continue
		}
		p = p.Masked()
		lo := binary.BigEndian.Uint32(p.Addr().AsSlice())
		hi := lo | uint32(uint64(1)<<(32-p.Bits())-1)
		out = append(out, span{lo, hi})
	}
	slices.SortFunc(out, func(a, b span) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	merged := out[:0]
	for _, s := range out {
		if n := len(merged); n > 0 && (merged[n-1].hi == ^uint32(0) || s.lo <= merged[n-1].hi+1) {
			merged[n-1].hi = max(merged[n-1].hi, s.hi)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// unmapPrefix returns p as an IPv4 prefix, or false when it is IPv6.
func unmapPrefix(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	a := p.Addr()
	if a.Is4() {
		return p, true
	}
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96), true
	}
	return netip.Prefix{}, false
}

// intervalElements encodes spans for an nftables interval set: a start
// key for each range and an interval-end key one past its last address,
// left out when the range reaches 255.255.255.255.
func intervalElements(ss []span) []nftables.SetElement {
	els := make([]nftables.SetElement, 0, 2*len(ss))
	for _, s := range ss {
		els = append(els, nftables.SetElement{Key: be32(s.lo)})
		if s.hi != ^uint32(0) {
			els = append(els, nftables.SetElement{Key: be32(s.hi + 1), IntervalEnd: true})
		}
	}
	return els
}

func be32(v uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, v)
}

// addrUint returns an IPv4 address as a number.
func addrUint(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// uintAddr is the inverse of addrUint.
func uintAddr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
