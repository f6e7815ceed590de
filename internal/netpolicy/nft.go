package netpolicy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// Names inside the table.
const (
	chainForward  = "forward"     // base: filter forward
	chainInput    = "input"       // base: filter input
	chainPost     = "postrouting" // base: nat postrouting
	chainEgress   = "egress"      // what a sandbox sends through the host
	chainHostIn   = "host_in"     // what a sandbox sends to the host itself
	chainRefuse   = "refuse"      // fail fast: TCP reset, else ICMP admin-prohibited
	setDeny       = "deny4"       // always denied destinations
	setResolvers  = "resolvers4"  // DNS servers sandboxes may use
	mapSandboxes  = "sandboxes"   // host-side veth name -> jump to its chain
	sandboxChainP = "s_"          // + id: the sandbox's policy
	allowSetP     = "a_"          // + id: its allow list
	denySetP      = "d_"          // + id: its deny list
)

func sandboxChainName(id string) string { return sandboxChainP + id }
func allowSetName(id string) string     { return allowSetP + id }
func denySetName(id string) string      { return denySetP + id }

// ruleset builds the nftables messages of one manager.
type ruleset struct {
	table  *nftables.Table
	prefix string // interface name prefix of sandbox veths
	pool   netip.Prefix
	uplink string // "" = any interface that is not a sandbox's
}

func newRuleset(cfg Config) *ruleset {
	return &ruleset{
		table:  &nftables.Table{Family: nftables.TableFamilyINet, Name: tableName(cfg.Prefix)},
		prefix: cfg.Prefix,
		pool:   cfg.Pool,
		uplink: cfg.Uplink,
	}
}

func (r *ruleset) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: r.table}
}

func (r *ruleset) ipv4Set(name string) *nftables.Set {
	return &nftables.Set{Table: r.table, Name: name, KeyType: nftables.TypeIPAddr, Interval: true}
}

// install creates the table if needed and (re)writes its shared chains and
// sets in one transaction. Per-sandbox chains, sets and map entries are
// left as they are, so sandboxes keep their policy across a restart.
func (r *ruleset) install(c *nftables.Conn, deny []netip.Prefix, resolvers []netip.Addr) error {
	c.AddTable(r.table)

	accept := nftables.ChainPolicyAccept
	base := []*nftables.Chain{
		{Name: chainForward, Table: r.table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept},
		{Name: chainInput, Table: r.table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept},
		{Name: chainPost, Table: r.table, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept},
	}
	for _, ch := range base {
		c.AddChain(ch)
	}
	for _, name := range []string{chainEgress, chainHostIn, chainRefuse} {
		c.AddChain(r.chain(name))
	}

	denySet := r.ipv4Set(setDeny)
	resolverSet := &nftables.Set{Table: r.table, Name: setResolvers, KeyType: nftables.TypeIPAddr}
	if err := addSets(c, denySet, resolverSet, r.vmap()); err != nil {
		return err
	}
	c.FlushSet(denySet)
	c.FlushSet(resolverSet)
	if els := intervalElements(spans4(deny)); len(els) > 0 {
		if err := c.SetAddElements(denySet, els); err != nil {
			return err
		}
	}
	if len(resolvers) > 0 {
		els := make([]nftables.SetElement, 0, len(resolvers))
		seen := map[netip.Addr]bool{}
		for _, a := range resolvers {
			a = a.Unmap()
			if seen[a] {
				continue
			}
			seen[a] = true
			els = append(els, nftables.SetElement{Key: a.AsSlice()})
		}
		if err := c.SetAddElements(resolverSet, els); err != nil {
			return err
		}
	}

	for _, name := range []string{chainForward, chainInput, chainPost, chainEgress, chainHostIn, chainRefuse} {
		c.FlushChain(r.chain(name))
	}
	add := func(chain string, exprs ...[]expr.Any) {
		c.AddRule(&nftables.Rule{Table: r.table, Chain: r.chain(chain), Exprs: join(exprs...)})
	}

	// forward: replies pass; a sandbox's own traffic goes to egress; new
	// connections into a sandbox from anywhere else are dropped.
	add(chainForward, ctEstablished(), verdict(expr.VerdictAccept))
	add(chainForward, ifnamePrefix(expr.MetaKeyIIFNAME, r.prefix), jump(chainEgress))
	add(chainForward, ifnamePrefix(expr.MetaKeyOIFNAME, r.prefix), verdict(expr.VerdictDrop))

	// egress: no IPv6 at all; DNS to the resolvers; never the always-deny
	// set; then the sandbox's own chain; a veth without one is refused.
	add(chainEgress, nfproto(unix.NFPROTO_IPV6), verdict(expr.VerdictDrop))
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		add(chainEgress, daddrIn(setResolvers), l4proto(proto), dport(53), verdict(expr.VerdictAccept))
	}
	add(chainEgress, daddrIn(setDeny), jump(chainRefuse))
	add(chainEgress, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: mapSandboxes, IsDestRegSet: true, DestRegister: 0},
	})
	add(chainEgress, jump(chainRefuse))

	// refuse: make clients fail at once instead of timing out.
	add(chainRefuse, l4proto(unix.IPPROTO_TCP), []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}})
	add(chainRefuse, []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH,
		Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}})

	// input: a sandbox reaches the host only with replies to connections
	// the host opened, and DNS to a resolver that is a host address.
	add(chainInput, ifnamePrefix(expr.MetaKeyIIFNAME, r.prefix), jump(chainHostIn))
	add(chainHostIn, ctEstablished(), verdict(expr.VerdictAccept))
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		add(chainHostIn, daddrIn(setResolvers), l4proto(proto), dport(53), verdict(expr.VerdictAccept))
	}
	add(chainHostIn, verdict(expr.VerdictDrop))

	// postrouting: the pool leaves masqueraded.
	out := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte(r.prefix)},
	}
	if r.uplink != "" {
		out = ifnameExact(expr.MetaKeyOIFNAME, r.uplink)
	}
	add(chainPost, saddrInPrefix(r.pool), out, []expr.Any{&expr.Masq{}})
	return nil
}

// addSandbox adds a sandbox's sets, chain and map entry with policy p.
func (r *ruleset) addSandbox(c *nftables.Conn, id, veth string, addr netip.Addr, p sandbox.NetworkPolicy) error {
	if err := addSets(c, r.ipv4Set(allowSetName(id)), r.ipv4Set(denySetName(id))); err != nil {
		return err
	}
	c.AddChain(r.chain(sandboxChainName(id)))
	if err := r.writePolicy(c, id, addr, p); err != nil {
		return err
	}
	return c.SetAddElements(r.vmap(), []nftables.SetElement{{
		Key:         ifnameKey(veth),
		VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: sandboxChainName(id)},
	}})
}

// addSets adds sets to one transaction. Their ids, which only need to be
// unique within it, are given here: nftables.Conn.AddSet would otherwise
// draw them from a package-level counter it does not lock, a data race
// between concurrent transactions.
func addSets(c *nftables.Conn, sets ...*nftables.Set) error {
	for i, s := range sets {
		s.ID = uint32(i + 1)
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
	}
	return nil
}

// writePolicy replaces the contents of a sandbox's sets and chain.
func (r *ruleset) writePolicy(c *nftables.Conn, id string, addr netip.Addr, p sandbox.NetworkPolicy) error {
	allow, deny := r.ipv4Set(allowSetName(id)), r.ipv4Set(denySetName(id))
	c.FlushSet(allow)
	c.FlushSet(deny)
	if els := intervalElements(spans4(p.AllowOut)); len(els) > 0 {
		if err := c.SetAddElements(allow, els); err != nil {
			return err
		}
	}
	if els := intervalElements(spans4(p.DenyOut)); len(els) > 0 {
		if err := c.SetAddElements(deny, els); err != nil {
			return err
		}
	}
	ch := r.chain(sandboxChainName(id))
	c.FlushChain(ch)
	add := func(exprs ...[]expr.Any) {
		c.AddRule(&nftables.Rule{Table: r.table, Chain: ch, Exprs: join(exprs...)})
	}
	// Only the sandbox's own address may send: no spoofing.
	add(saddrNot(addr), verdict(expr.VerdictDrop))
	add(daddrIn(denySetName(id)), jump(chainRefuse))
	add(daddrIn(allowSetName(id)), verdict(expr.VerdictAccept))
	if p.Internet {
		add(verdict(expr.VerdictAccept))
	} else {
		add(jump(chainRefuse))
	}
	return nil
}

// removeSandbox deletes a sandbox's map entry, chain and sets.
func (r *ruleset) removeSandbox(c *nftables.Conn, id, veth string) error {
	if err := c.SetDeleteElements(r.vmap(), []nftables.SetElement{{
		Key:         ifnameKey(veth),
		VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: sandboxChainName(id)},
	}}); err != nil {
		return err
	}
	r.removeSandboxObjects(c, id)
	return nil
}

// removeSandboxObjects deletes a sandbox's chain and sets, which must no
// longer be referenced by the map.
func (r *ruleset) removeSandboxObjects(c *nftables.Conn, id string) {
	ch := r.chain(sandboxChainName(id))
	c.FlushChain(ch)
	c.DelChain(ch)
	c.DelSet(r.ipv4Set(allowSetName(id)))
	c.DelSet(r.ipv4Set(denySetName(id)))
}

// vmap is the map from host-side veth name to the sandbox's chain. nft
// keeps interface names host-endian; saying so lets "nft list" print them.
func (r *ruleset) vmap() *nftables.Set {
	return &nftables.Set{Table: r.table, Name: mapSandboxes, IsMap: true,
		KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict,
		KeyByteOrder: binaryutil.NativeEndian}
}

// sandboxObjects lists the ids that own a chain or a set in the table, and
// the map entries as veth name -> id. A missing table gives nothing.
func (r *ruleset) sandboxObjects(c *nftables.Conn) (objs map[string]bool, entries map[string]string, err error) {
	objs = map[string]bool{}
	entries = map[string]string{}
	chains, err := c.ListChainsOfTableFamily(r.table.Family)
	if err != nil {
		return nil, nil, fmt.Errorf("list chains: %w", err)
	}
	found := false
	for _, ch := range chains {
		if ch.Table.Name != r.table.Name {
			continue
		}
		found = true
		if id, ok := strings.CutPrefix(ch.Name, sandboxChainP); ok {
			objs[id] = true
		}
	}
	if !found {
		return objs, entries, nil
	}
	sets, err := c.GetSets(r.table)
	if err != nil {
		return nil, nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		for _, p := range []string{allowSetP, denySetP} {
			if id, ok := strings.CutPrefix(s.Name, p); ok {
				objs[id] = true
			}
		}
	}
	els, err := c.GetSetElements(r.vmap())
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, nil, fmt.Errorf("list sandbox map: %w", err)
	}
	for _, e := range els {
		if e.VerdictData == nil {
			continue
		}
		if id, ok := strings.CutPrefix(e.VerdictData.Chain, sandboxChainP); ok {
			entries[strings.TrimRight(string(e.Key), "\x00")] = id
		}
	}
	return objs, entries, nil
}

// Expression builders.

func join(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}

func ctEstablished() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: nativeUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  nativeUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: nativeUint32(0)},
	}
}

func nfproto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

func dport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(port >> 8), byte(port)}},
	}
}

// ifnamePrefix matches interface names that start with prefix, as nft's
// "iifname prefix*" does: a compare of only the prefix's bytes.
func ifnamePrefix(key expr.MetaKey, prefix string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(prefix)},
	}
}

func ifnameExact(key expr.MetaKey, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameKey(name)},
	}
}

// ifnameKey is an interface name as the kernel loads it: IFNAMSIZ bytes,
// zero padded.
func ifnameKey(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func daddrIn(set string) []expr.Any {
	return join(nfproto(unix.NFPROTO_IPV4), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: set},
	})
}

func saddrNot(a netip.Addr) []expr.Any {
	return join(nfproto(unix.NFPROTO_IPV4), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: a.AsSlice()},
	})
}

func saddrInPrefix(p netip.Prefix) []expr.Any {
	mask := be32(^uint32(0) << (32 - p.Bits()))
	if p.Bits() == 0 {
		mask = be32(0)
	}
	return join(nfproto(unix.NFPROTO_IPV4), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: be32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	})
}

// nativeUint32 encodes ct state bits, which the kernel keeps host-endian.
func nativeUint32(v uint32) []byte {
	return binaryutil.NativeEndian.PutUint32(v)
}
