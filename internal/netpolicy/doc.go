// Package netpolicy gives every sandbox its own network and polices what
// it may reach, in process: netlink for namespaces, veths, addresses and
// routes, nftables for the firewall. Nothing here runs ip, nft or iptables.
//
// # Plumbing
//
// Each sandbox gets a network namespace created by the host (so it is
// owned by the host's user namespace: root inside the sandbox's own user
// namespace has no CAP_NET_ADMIN over it and cannot change addresses,
// routes, links or rules), bound at <NetNSDir>/<prefix>-<id> so that it
// outlives the server and can be joined later with Net.Enter. A veth
// <prefix><first 8 characters of id> connects it to the host, its peer
// created inside the namespace as eth0. The pool (default 100.96.0.0/16) is
// cut into /30s: the host side takes .1, the sandbox .2 with a default
// route through .1. The host forwards (net.ipv4.ip_forward=1) and
// masquerades the pool out of the uplink. NetNSDir is made a shared bind
// mount of itself, as iproute2 does for /run/netns, so that unmounting a
// namespace there is seen by every mount namespace that copied it.
//
// # State
//
// The kernel is the only record. The host-side veth carries the alias
// <prefix>-<id> and its /30, so a new Manager learns which addresses are
// taken by listing veths, and Reclaim finds the leftovers of a crash by
// listing veths (with or without their alias yet), namespace files and
// nftables objects.
//
// # Firewall
//
// One table, inet "cubicle" (inet "cubicle_<prefix>" for other prefixes),
// shared chains rewritten by New and per-sandbox objects left alone:
//
//	forward (filter hook)  ct established,related accept
//	                       iifname "<prefix>*" jump egress
//	                       oifname "<prefix>*" drop      # nothing new into a sandbox
//	egress                 IPv6 drop
//	                       ip daddr @resolvers4 udp/tcp dport 53 accept
//	                       ip daddr @deny4 jump refuse   # always denied
//	                       iifname vmap @sandboxes       # veth -> jump s_<id>
//	                       jump refuse                   # a veth without a chain
//	s_<id>                 ip saddr != <sandbox address> drop
//	                       ip daddr @d_<id> jump refuse  # DenyOut
//	                       ip daddr @a_<id> accept       # AllowOut
//	                       accept | jump refuse          # Internet on | off
//	refuse                 tcp: reject with tcp reset; else icmpx admin-prohibited
//	input (filter hook)    iifname "<prefix>*" jump host_in
//	host_in                ct established,related accept # the server dials the agent
//	                       ip daddr @resolvers4 udp/tcp dport 53 accept
//	                       drop
//	postrouting (nat hook) ip saddr <pool> oifname <uplink> masquerade
//
// deny4 holds 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12,
// 192.168/16, 224/4, 240/4, the pool and the host's own IPv4 addresses at
// the time New ran; the input chain covers host addresses added later,
// since traffic to any of them is local. So the allow list can never open
// private ranges, metadata, the host or another sandbox. Refused
// connections fail at once; traffic to the host itself is dropped.
//
// Apply rewrites one sandbox's sets and chain in a single nftables
// transaction: new connections follow the new policy, established ones
// continue.
//
// # IPv6
//
// Sandboxes have none. Their namespace is created with
// net.ipv6.conf.default.disable_ipv6=1, so eth0 gets no address, not even a
// link-local one (the loopback keeps ::1), IPv6 is disabled on the host
// side of the veth, and the firewall drops every IPv6 packet from a
// sandbox veth. IPv6 prefixes in a policy therefore change nothing, and
// the IPv6 always-deny ranges (::1, fc00::/7, fe80::/10) need no set.
package netpolicy
