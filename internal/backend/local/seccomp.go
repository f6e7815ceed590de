package local

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sandbox's seccomp filter is a deny list in the manner of Docker's
// default profile, reduced to what a desktop never needs and what widens
// the kernel's attack surface most. Foreign ABIs (x32, i386 through int
// 0x80) kill the process, since a deny list by syscall number only holds
// for the native one. Denied calls fail with EPERM, so programs take
// their fallback paths; clone3 fails with ENOSYS, because its flags sit in
// memory where a filter cannot look, and libc then falls back to clone,
// whose flags it can check.

// nsFlags are the namespace flags clone and unshare may not use: a sandbox
// makes no namespaces (a nested user namespace would give its root
// capabilities over fresh kernel objects).
const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// cloneNewTime is CLONE_NEWTIME; it overlaps the exit signal in clone's
// flags, so only unshare checks it.
const cloneNewTime = 0x80

// Offsets in struct seccomp_data.
const (
	offNr      = 0
	offArch    = 4
	offArg0Low = 16 // low 32 bits of args[0], little-endian
)

// instruction is a cBPF instruction whose jumps name labels.
type instruction struct {
	code   uint16
	k      uint32
	jt, jf string // labels; "" falls through
	label  string // set on the first instruction of a label
}

// assemble resolves the labels into relative jumps.
func assemble(prog []instruction) ([]unix.SockFilter, error) {
	at := map[string]int{}
	for i, in := range prog {
		if in.label != "" {
			at[in.label] = i
		}
	}
	rel := func(i int, label string) (uint8, error) {
		if label == "" {
			return 0, nil
		}
		j, ok := at[label]
		if !ok {
			return 0, fmt.Errorf("seccomp: no label %q", label)
		}
		d := j - i - 1
		if d < 0 || d > 255 {
			return 0, fmt.Errorf("seccomp: jump to %q out of range (%d)", label, d)
		}
		return uint8(d), nil
	}
	out := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		jt, err := rel(i, in.jt)
		if err != nil {
			return nil, err
		}
		jf, err := rel(i, in.jf)
		if err != nil {
			return nil, err
		}
		out[i] = unix.SockFilter{Code: in.code, Jt: jt, Jf: jf, K: in.k}
	}
	return out, nil
}

func load(off uint32) instruction {
	return instruction{code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, k: off}
}

func jeq(k uint32, jt, jf string) instruction {
	return instruction{code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, k: k, jt: jt, jf: jf}
}

func ret(k uint32) instruction {
	return instruction{code: unix.BPF_RET | unix.BPF_K, k: k}
}

func labelled(label string, in instruction) instruction {
	in.label = label
	return in
}

// seccompFilter builds the sandbox's filter for this architecture.
func seccompFilter(allowPtrace bool) ([]unix.SockFilter, error) {
	if nativeArch == 0 {
		return nil, errors.New("seccomp: no filter for this architecture")
	}
	denied := deniedSyscalls
	if !allowPtrace {
		denied = append(denied[:len(denied):len(denied)], ptraceSyscalls...)
	}
	prog := []instruction{
		load(offArch),
		jeq(nativeArch, "", "kill"),
		load(offNr),
	}
	if foreignNrBit != 0 {
		prog = append(prog, instruction{code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, k: foreignNrBit, jt: "kill"})
	}
	for _, nr := range denied {
		prog = append(prog, jeq(nr, "eperm", ""))
	}
	prog = append(prog,
		jeq(unix.SYS_CLONE, "clone", ""),
		jeq(unix.SYS_UNSHARE, "unshare", ""),
		jeq(unix.SYS_CLONE3, "enosys", ""),
		ret(unix.SECCOMP_RET_ALLOW),
		labelled("clone", load(offArg0Low)),
		instruction{code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, k: nsFlags, jt: "eperm", jf: "allow"},
		labelled("unshare", load(offArg0Low)),
		instruction{code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, k: nsFlags | cloneNewTime, jt: "eperm", jf: "allow"},
		labelled("eperm", ret(unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM))),
		labelled("enosys", ret(unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS))),
		labelled("allow", ret(unix.SECCOMP_RET_ALLOW)),
		labelled("kill", ret(unix.SECCOMP_RET_KILL_PROCESS)),
	)
	return assemble(prog)
}

// installSeccomp installs the filter on every thread of this process. It
// needs no_new_privs or CAP_SYS_ADMIN in the process's user namespace; the
// init has the latter, so no_new_privs stays off and setuid programs
// (sudo) keep working inside.
func installSeccomp(allowPtrace bool) error {
	filter, err := seccompFilter(allowPtrace)
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return fmt.Errorf("seccomp: install: %w", errno)
	}
	if r != 0 {
		return fmt.Errorf("seccomp: install: thread %d could not be synchronised", r)
	}
	return nil
}
