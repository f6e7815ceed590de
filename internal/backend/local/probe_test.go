package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// probeMain is the agent of the test sandboxes: `cubicle agent MODE ...`
// runs as pid 1 inside, writes its findings to standard output (the
// sandbox's log) as lines the tests wait for, then stays up as a sandbox's
// pid 1 does, reaping orphans.
func probeMain(args []string) int {
	if len(args) == 0 {
		fmt.Println("ERROR no mode")
		return 2
	}
	switch args[0] {
	case "ready":
		fmt.Println("READY")
	case "posture":
		printResults("POSTURE", postureChecks())
		runAs(1000, "posture-user")
	case "posture-user":
		printResults("POSTURE-USER", userChecks())
		return 0
	case "escape":
		printResults("ESCAPE", escapeChecks())
	case "chroot-escape":
		return chrootEscape()
	case "run":
		cmd := exec.Command("/bin/sh", "-c", args[1])
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		err := cmd.Run()
		fmt.Printf("EXIT %s\n", exitText(err))
	case "hog":
		mb, _ := strconv.Atoi(args[1])
		hog(mb)
		return 0
	case "sudo":
		sudoProbe()
	case "sudo-child":
		sudoChild()
	case "noop":
		return 0
	case "traceme":
		fmt.Printf("TRACEME %v\n", tracemeOffMainThread())
	case "x32":
		unix.RawSyscall(0x40000000+unix.SYS_GETPID, 0, 0, 0)
		fmt.Println("x32 call survived")
		return 0
	default:
		fmt.Printf("ERROR unknown mode %q\n", args[0])
		return 2
	}
	hold()
	return 0
}

// hold keeps pid 1 up, reaping whatever ends under it.
func hold() {
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); errors.Is(err, unix.ECHILD) {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func printResults(prefix string, results map[string]string) {
	data, _ := json.Marshal(results)
	fmt.Printf("%s %s\n", prefix, data)
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "signal " + ws.Signal().String()
		}
		return strconv.Itoa(ee.ExitCode())
	}
	if err != nil {
		return "error " + err.Error()
	}
	return "0"
}

// runAs runs this binary with mode as uid:gid id inside and waits.
func runAs(id uint32, mode string, args ...string) {
	cmd := exec.Command(agentPath, append([]string{"agent", mode}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: id, Gid: id}}
	if err := cmd.Run(); err != nil {
		fmt.Printf("ERROR %s as %d: %v\n", mode, id, err)
	}
}

// check is one posture check: nil passes.
type check func() error

func runChecks(checks map[string]check) map[string]string {
	out := map[string]string{}
	for name, c := range checks {
		if err := c(); err != nil {
			out[name] = err.Error()
		} else {
			out[name] = "ok"
		}
	}
	return out
}

// wantErrno passes when err is want.
func wantErrno(err error, want syscall.Errno) error {
	if errors.Is(err, want) {
		return nil
	}
	return fmt.Errorf("got %v, want %v", err, want)
}

// tracemeOffMainThread calls ptrace(PTRACE_TRACEME) from a thread that is
// not the process's first one: the backend must still reap such an init.
func tracemeOffMainThread() error {
	res := make(chan error)
	var try func()
	try = func() {
		runtime.LockOSThread() // never unlocked: the thread stays traced
		if unix.Gettid() == unix.Getpid() {
			go try() // this goroutine holds the first thread
			select {}
		}
		res <- rawErrno(unix.SYS_PTRACE, unix.PTRACE_TRACEME)
		select {}
	}
	go try()
	return <-res
}

func rawErrno(trap uintptr, a ...uintptr) error {
	var args [6]uintptr
	copy(args[:], a)
	_, _, e := unix.Syscall6(trap, args[0], args[1], args[2], args[3], args[4], args[5])
	if e != 0 {
		return e
	}
	return nil
}

func statusField(key string) string {
	data, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// absent passes when none of paths exists.
func absent(paths ...string) error {
	var found []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, os.ErrNotExist) {
			found = append(found, p)
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("present: %v", found)
	}
	return nil
}

// markerIsRootFS passes when the file at path is the test root
// filesystem's marker, not a host file.
func markerIsRootFS(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !strings.Contains(string(data), "test rootfs") {
		return fmt.Errorf("%s is %q, not the sandbox's", path, data)
	}
	return nil
}

func hostPaths() []string {
	return strings.Split(os.Getenv("PROBE_HOST_PATHS"), ":")
}

// commonChecks hold for root and for uid 1000 alike.
func commonChecks() map[string]check {
	return map[string]check{
		"seccomp mode 2": func() error {
			if v := statusField("Seccomp"); v != "2" {
				return fmt.Errorf("Seccomp: %s", v)
			}
			return nil
		},
		"no_new_privs off": func() error {
			if v := statusField("NoNewPrivs"); v != "0" {
				return fmt.Errorf("NoNewPrivs: %s", v)
			}
			return nil
		},
		"uid_map is a range of its own": func() error {
			data, err := os.ReadFile("/proc/self/uid_map")
			if err != nil {
				return err
			}
			f := strings.Fields(string(data))
			if len(f) != 3 || f[0] != "0" || f[1] == "0" || f[2] != "65536" {
				return fmt.Errorf("uid_map %q", data)
			}
			return nil
		},
		"mount denied":         func() error { return wantErrno(unix.Mount("none", "/tmp", "tmpfs", 0, ""), unix.EPERM) },
		"umount denied":        func() error { return wantErrno(unix.Unmount("/proc", unix.MNT_DETACH), unix.EPERM) },
		"unshare user denied":  func() error { return wantErrno(unix.Unshare(unix.CLONE_NEWUSER), unix.EPERM) },
		"unshare mount denied": func() error { return wantErrno(unix.Unshare(unix.CLONE_NEWNS), unix.EPERM) },
		"unshare net denied":   func() error { return wantErrno(unix.Unshare(unix.CLONE_NEWNET), unix.EPERM) },
		"clone newuser denied": cloneNewUser,
		"clone3 unavailable":   func() error { return wantErrno(rawErrno(unix.SYS_CLONE3, 0, 0), unix.ENOSYS) },
		"setns denied":         setnsDenied,
		"keyctl denied": func() error {
			return wantErrno(rawErrno(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, 0xfffffffd), unix.EPERM)
		},
		"bpf denied":             func() error { return wantErrno(rawErrno(unix.SYS_BPF, 0, 0, 0), unix.EPERM) },
		"perf_event_open denied": func() error { return wantErrno(rawErrno(unix.SYS_PERF_EVENT_OPEN, 0, 0, 0, 0, 0), unix.EPERM) },
		"io_uring_setup denied":  func() error { return wantErrno(rawErrno(unix.SYS_IO_URING_SETUP, 1, 0), unix.EPERM) },
		"userfaultfd denied":     func() error { return wantErrno(rawErrno(unix.SYS_USERFAULTFD, 0), unix.EPERM) },
		"open_by_handle_at denied": func() error {
			return wantErrno(rawErrno(unix.SYS_OPEN_BY_HANDLE_AT, 0, 0, 0), unix.EPERM)
		},
		"syslog denied":      func() error { return wantErrno(rawErrno(unix.SYS_SYSLOG, 10, 0, 0), unix.EPERM) },
		"init_module denied": func() error { return wantErrno(rawErrno(unix.SYS_INIT_MODULE, 0, 0, 0), unix.EPERM) },
		"kexec_load denied":  func() error { return wantErrno(rawErrno(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0), unix.EPERM) },
		"reboot denied":      func() error { return wantErrno(rawErrno(unix.SYS_REBOOT, 0, 0, 0, 0), unix.EPERM) },
		"ptrace denied": func() error {
			return wantErrno(rawErrno(unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1), unix.EPERM)
		},
		"x32 abi kills":        x32Kills,
		"no host paths":        func() error { return absent(hostPaths()...) },
		"root is the template": func() error { return markerIsRootFS("/etc/marker") },
		"proc/sys read-only": func() error {
			for _, p := range []string{"/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger"} {
				if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
					f.Close()
					return fmt.Errorf("%s opened for writing", p)
				}
			}
			return nil
		},
		"sys not writable": func() error {
			if f, err := os.Create("/sys/probe"); err == nil {
				f.Close()
				return errors.New("created /sys/probe")
			}
			return nil
		},
		"no dangerous devices": func() error {
			return absent("/dev/kvm", "/dev/fuse", "/dev/net/tun", "/dev/vda", "/dev/sda", "/dev/mem",
				"/dev/kmem", "/dev/kmsg", "/dev/loop0", "/dev/loop-control", "/dev/userfaultfd")
		},
		"usual devices work": usualDevices,
		"kcore masked": func() error {
			data, err := os.ReadFile("/proc/kcore")
			if err == nil && len(data) > 0 {
				return fmt.Errorf("read %d bytes of /proc/kcore", len(data))
			}
			return nil
		},
		"only loopback": func() error {
			ifs, err := net.Interfaces()
			if err != nil {
				return err
			}
			if len(ifs) != 1 || ifs[0].Name != "lo" {
				return fmt.Errorf("interfaces %v", ifs)
			}
			return nil
		},
		"cgroups hidden": func() error {
			data, err := os.ReadFile("/proc/self/cgroup")
			if err != nil {
				return err
			}
			for line := range strings.Lines(string(data)) {
				if !strings.HasSuffix(strings.TrimSpace(line), ":/") {
					return fmt.Errorf("/proc/self/cgroup line %q", strings.TrimSpace(line))
				}
			}
			return absent("/sys/fs/cgroup")
		},
		"host pid invisible": func() error {
			pid, _ := strconv.Atoi(os.Getenv("PROBE_HOST_PID"))
			if pid <= 1 {
				return errors.New("no PROBE_HOST_PID")
			}
			if err := unix.Kill(pid, 0); err == nil {
				// The same number may exist inside; it must not be the host's.
				if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmd), "-test.") {
					return fmt.Errorf("host pid %d is visible", pid)
				}
			}
			return nil
		},
		"agent binary read-only": func() error {
			f, err := os.OpenFile(agentPath, os.O_WRONLY, 0)
			if err == nil {
				f.Close()
				return errors.New("opened for writing")
			}
			return nil
		},
		"hostname": func() error {
			if h, _ := os.Hostname(); h != "sbx" {
				return fmt.Errorf("hostname %q", h)
			}
			return nil
		},
	}
}

func postureChecks() map[string]string {
	checks := commonChecks()
	checks["pid 1"] = func() error {
		if os.Getpid() != 1 {
			return fmt.Errorf("pid %d", os.Getpid())
		}
		return nil
	}
	checks["only sandbox pids"] = func() error {
		procs, _ := filepath.Glob("/proc/[0-9]*")
		if len(procs) > 10 {
			return fmt.Errorf("%d processes visible", len(procs))
		}
		return nil
	}
	checks["root writes the layer"] = func() error {
		if err := os.WriteFile("/etc/probe", []byte("x"), 0o644); err != nil {
			return err
		}
		// Copy-up of a template file, and a whiteout over another.
		f, err := os.OpenFile("/etc/passwd", os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		f.Close()
		if err := os.Remove("/etc/group"); err != nil {
			return err
		}
		return os.MkdirAll("/root/a/b", 0o755)
	}
	return runChecks(checks)
}

func userChecks() map[string]string {
	checks := commonChecks()
	checks["is uid 1000"] = func() error {
		if os.Getuid() != 1000 {
			return fmt.Errorf("uid %d", os.Getuid())
		}
		return nil
	}
	checks["cannot write root's files"] = func() error {
		if f, err := os.OpenFile("/etc/passwd", os.O_WRONLY, 0); err == nil {
			f.Close()
			return errors.New("opened /etc/passwd for writing")
		}
		return wantErrno(os.WriteFile("/root/x", nil, 0o644), unix.EACCES)
	}
	checks["owns its home"] = func() error { return os.WriteFile("/home/user/x", []byte("x"), 0o644) }
	checks["writes /tmp"] = func() error { return os.WriteFile("/tmp/x", []byte("x"), 0o644) }
	return runChecks(checks)
}

func usualDevices() error {
	for _, name := range []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/random"} {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		f.Close()
	}
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	ptmx.Close()
	return os.WriteFile(fmt.Sprintf("/dev/shm/x%d", os.Getuid()), []byte("x"), 0o644)
}

func cloneNewUser() error {
	cmd := exec.Command(agentPath, "agent", "noop")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	return wantErrno(cmd.Run(), unix.EPERM)
}

func setnsDenied() error {
	fd, err := unix.Open("/proc/self/ns/uts", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return wantErrno(unix.Setns(fd, 0), unix.EPERM)
}

// x32Kills runs a child that makes an x32 system call; the filter kills it.
func x32Kills() error {
	err := exec.Command(agentPath, "agent", "x32").Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGSYS {
			return nil
		}
	}
	return fmt.Errorf("x32 call: %v, want killed by SIGSYS", err)
}

// escapeChecks are ISOLATION's escape regressions.
func escapeChecks() map[string]string {
	return runChecks(map[string]check{
		"chroot escape stays inside": func() error {
			out, err := exec.Command(agentPath, "agent", "chroot-escape").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if !strings.Contains(string(out), "INSIDE") {
				return fmt.Errorf("escape: %s", out)
			}
			return nil
		},
		"/proc/1/root is the sandbox": func() error {
			if err := markerIsRootFS("/proc/1/root/etc/marker"); err != nil {
				return err
			}
			if err := markerIsRootFS("/proc/1/root/../../../etc/marker"); err != nil {
				return err
			}
			var paths []string
			for _, p := range hostPaths() {
				paths = append(paths, "/proc/1/root/../.."+p)
			}
			return absent(paths...)
		},
		"/proc/self/cwd of a dead root": func() error {
			// The old root was detached: no process holds a way back.
			for _, p := range []string{"/proc/1/cwd", "/proc/self/root"} {
				if l, err := os.Readlink(p); err != nil || l != "/" {
					return fmt.Errorf("%s -> %q (%v)", p, l, err)
				}
			}
			return nil
		},
		"nested user namespace": func() error { return wantErrno(unix.Unshare(unix.CLONE_NEWUSER), unix.EPERM) },
		"ptrace host pid": func() error {
			pid, _ := strconv.Atoi(os.Getenv("PROBE_HOST_PID"))
			return wantErrno(rawErrno(unix.SYS_PTRACE, unix.PTRACE_ATTACH, uintptr(pid)), unix.EPERM)
		},
		"module load": func() error { return wantErrno(rawErrno(unix.SYS_FINIT_MODULE, 0, 0, 0), unix.EPERM) },
		"io_uring":    func() error { return wantErrno(rawErrno(unix.SYS_IO_URING_SETUP, 1, 0), unix.EPERM) },
		"kexec":       func() error { return wantErrno(rawErrno(unix.SYS_KEXEC_FILE_LOAD, 0, 0, 0, 0, 0), unix.EPERM) },
		"host file through log fd": func() error {
			// Standard output is a host file; reopening it by path must fail.
			f, err := os.OpenFile("/proc/self/fd/1", os.O_RDWR, 0)
			if err == nil {
				f.Close()
				return errors.New("reopened the host log file")
			}
			return nil
		},
		"mknod": func() error {
			return wantErrno(unix.Mknod("/tmp/sda", unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))), unix.EPERM)
		},
	})
}

// chrootEscape tries the classic escape: chroot into a subdirectory
// without entering it, climb out with "..", chroot to where it ended up.
func chrootEscape() int {
	if err := os.MkdirAll("/tmp/jail", 0o755); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	if err := unix.Chroot("/tmp/jail"); err != nil {
		fmt.Println("ERROR chroot", err)
		return 1
	}
	for range 64 {
		unix.Chdir("..")
	}
	if err := unix.Chroot("."); err != nil {
		fmt.Println("ERROR chroot .", err)
		return 1
	}
	if markerIsRootFS("/etc/marker") != nil || absent(hostPaths()...) != nil {
		fmt.Println("ESCAPED")
		return 0
	}
	fmt.Println("INSIDE")
	return 0
}

// hog allocates mb MiB and touches every page.
func hog(mb int) {
	var keep [][]byte
	for range mb {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	fmt.Println("HOG survived", len(keep))
}

// sudoProbe runs, as uid 1000, sudo of this binary's sudo-child.
func sudoProbe() {
	out, err := exec.Command("/usr/bin/id", "-u").Output()
	fmt.Printf("ROOT-ID %s %v\n", strings.TrimSpace(string(out)), err)
	cmd := exec.Command("/usr/bin/sudo", "-n", agentPath, "agent", "sudo-child")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/user", "USER=user"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	if err := cmd.Start(); err != nil {
		fmt.Println("SUDO-ERROR", err)
		return
	}
	go func() {
		err := cmd.Wait()
		fmt.Println("SUDO-EXIT", exitText(err))
	}()
}

// sudoChild runs as root through sudo: it reports who it is and what it
// can do, then stays up so the host can look at it.
func sudoChild() {
	res := map[string]string{
		"uid":  strconv.Itoa(os.Getuid()),
		"euid": strconv.Itoa(os.Geteuid()),
		"pid":  strconv.Itoa(os.Getpid()),
	}
	if f, err := os.OpenFile("/proc/1/fd/1", os.O_WRONLY|os.O_APPEND, 0); err == nil {
		f.Close()
		res["host file"] = "opened for writing"
	} else {
		res["host file"] = err.Error()
	}
	if err := unix.Mount("none", "/mnt", "tmpfs", 0, ""); err == nil {
		res["mount"] = "allowed"
	} else {
		res["mount"] = err.Error()
	}
	if f, err := os.OpenFile("/etc/shadow", os.O_RDWR, 0); err == nil {
		f.Close()
		res["shadow"] = "ok"
	} else {
		res["shadow"] = err.Error()
	}
	printResults("SUDO-CHILD", res)
	for {
		time.Sleep(time.Hour)
	}
}
