// Package local runs sandboxes on this host from Linux kernel primitives:
// a user namespace per sandbox mapped to its own range of 65536 host ids;
// pid, mount, UTS, IPC and cgroup namespaces of its own; a network
// namespace created and owned by the host, which the sandbox joins; an
// overlay root whose lower layer is the template's root filesystem,
// idmapped read-only into the sandbox's range, and whose upper layer lives
// on a size-capped ext4 image; cgroup limits on memory, processes and CPU;
// and a seccomp filter that denies what a sandbox has no use for (new
// namespaces, mounts, keyrings, BPF, io_uring, kernel modules, ...).
//
// A sandbox does not depend on the process that created it: it keeps
// running when the server dies, and a new Backend adopts it (Adopt) or
// removes what is left of it (Reclaim). Everything a sandbox holds on the
// host can be found again from its id: its state directory, its cgroups,
// the loop device behind its image and its network namespace.
//
// The sandbox starts as `<binary> sandbox-init` (see InitMain) in the new
// namespaces. The init receives the layers as detached mounts from the
// backend, builds the root filesystem, pivots into it, installs the seccomp
// filter and executes the cubicle agent as pid 1.
package local
