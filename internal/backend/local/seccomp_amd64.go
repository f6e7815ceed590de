package local

import "golang.org/x/sys/unix"

// nativeArch is the AUDIT_ARCH of the native system call ABI.
const nativeArch = unix.AUDIT_ARCH_X86_64

// foreignNrBit marks x32 system calls, which share the x86-64 arch value.
const foreignNrBit = 0x40000000

// deniedSyscalls fail with EPERM in every sandbox.
var deniedSyscalls = []uint32{
	// Mounts and namespaces (clone and unshare are checked by flag).
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_SETNS,
	unix.SYS_OPEN_TREE, unix.SYS_OPEN_TREE_ATTR, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN,
	unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR,
	// Keyrings, BPF, perf, io_uring, userfaultfd.
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	// The kernel itself.
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_INIT_MODULE,
	unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE, unix.SYS_CREATE_MODULE,
	unix.SYS_GET_KERNEL_SYMS, unix.SYS_QUERY_MODULE, unix.SYS_REBOOT,
	unix.SYS_SYSLOG, unix.SYS_ACCT, unix.SYS_SWAPON, unix.SYS_SWAPOFF,
	unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD, unix.SYS_LOOKUP_DCOOKIE,
	unix.SYS_NFSSERVCTL, unix.SYS__SYSCTL, unix.SYS_USELIB, unix.SYS_VHANGUP,
	unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_FANOTIFY_INIT,
	// File handles bypass path permissions.
	unix.SYS_OPEN_BY_HANDLE_AT,
}

// ptraceSyscalls fail with EPERM unless the backend allows ptrace.
var ptraceSyscalls = []uint32{
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PIDFD_GETFD,
}
