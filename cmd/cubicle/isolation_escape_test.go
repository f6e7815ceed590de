package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cubicle-dev/cubicle/client"
)

// fileEscape plants symlinks and ../ paths in sbx and checks that the file
// API reads or writes no host file through them.
func fileEscape(t *testing.T, sbx *client.Sandbox, hostSecrets []string, secret string) {
	ctx := context.Background()
	script := "cd /home/user && ln -sfn /etc/shadow x && ln -sfn /proc/1/root r"
	for i, p := range hostSecrets {
		script += fmt.Sprintf(" && ln -sfn %s h%d", p, i)
	}
	mustInside(t, sbx, "", script)
	for _, p := range []string{"/home/user/x", "/home/user/r/etc/shadow"} {
		if b, err := sbx.Files.Read(ctx, p); err == nil {
			t.Errorf("the desktop user read %s through the file API (%d bytes)", p, len(b))
		}
	}
	var paths []string
	for i, p := range hostSecrets {
		paths = append(paths, p,
			fmt.Sprintf("/home/user/h%d", i),
			"/home/user/r"+p,
			"/proc/1/root"+p,
			"/proc/self/root"+p,
			"/home/user/../../../../.."+p)
	}
	for _, f := range []*client.Files{sbx.Files, sbx.Files.AsUser("root")} {
		for _, p := range paths {
			if b, err := f.Read(ctx, p); err == nil && strings.Contains(string(b), secret) {
				t.Errorf("the file API read the host file through %s", p)
			}
		}
	}
	for i := range hostSecrets {
		sbx.Files.AsUser("root").Write(ctx, fmt.Sprintf("/home/user/h%d", i), []byte("overwritten"))
	}
	for _, p := range hostSecrets {
		if b, err := os.ReadFile(p); err != nil || string(b) != secret {
			t.Errorf("host file %s after writes through sandbox symlinks: %q %v", p, b, err)
		}
	}
	cmd := "cat /tmp/host-secret-* /home/user/h* /home/user/r/tmp/host-secret-* 2>&1"
	for _, p := range hostSecrets {
		cmd += " " + p
	}
	for _, user := range []string{"", "root"} {
		if out, _ := inside(t, sbx, user, cmd+"; true"); strings.Contains(out, secret) {
			t.Errorf("a command as %q read a host file: %q", user, out)
		}
	}
}

// escapes runs known escape attempts as root in sbx and checks that none
// reaches the host.
func escapes(t *testing.T, sbx *client.Sandbox, hostSecrets []string) {
	// hostCheck prints HOST for any host path visible from where it runs.
	hostCheck := "for p in /work/main/go.mod " + strings.Join(hostSecrets, " ") + "; do [ -e $p ] && echo HOST $p; done; true"
	rootList := mustInside(t, sbx, "root", "ls -a /")
	for _, tc := range []struct{ name, script string }{
		{"chroot escape", `mkdir -p /tmp/jail && perl -e 'chroot("/tmp/jail") or die "chroot: $!\n"; chdir("..") for 1..64; chroot(".") or die "chroot back: $!\n"; exec("/bin/sh", "-c", $ARGV[0]) or die "exec: $!\n"' '` + hostCheck + `'`},
		{"/proc/1/root", "cd /proc/1/root/.. && " + strings.ReplaceAll(hostCheck, " /", " ./")},
		{"nsenter into pid 1", "nsenter -t 1 -a sh -c '" + hostCheck + "'"},
		{"nsenter mount namespace of pid 1", "nsenter -t 1 -m sh -c '" + hostCheck + "'"},
		{"plain", hostCheck},
	} {
		out, ok := inside(t, sbx, "root", tc.script)
		if strings.Contains(out, "HOST") {
			t.Errorf("%s reached the host: %s", tc.name, out)
		}
		t.Logf("%s: exit 0 %v: %q", tc.name, ok, out)
	}
	if out := mustInside(t, sbx, "root", "ls -a /proc/1/root/.."); out != rootList {
		t.Errorf("/proc/1/root/.. lists %q, / lists %q", out, rootList)
	}
	for _, user := range []string{"", "root"} {
		for _, script := range []string{"unshare -U true", "unshare -r true", "unshare -Ur unshare -U true"} {
			if out, ok := inside(t, sbx, user, script); ok {
				t.Errorf("as %q %q worked: %s", user, script, out)
			}
		}
	}
	// Dangerous files are only opened, never written; syscalls get
	// arguments the kernel would reject anyway, so only seccomp's EPERM
	// tells that they were filtered.
	py := `import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *args):
    r = libc.syscall(nr, *args)
    print(name, r, errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()))
try:
    os.close(os.open("/proc/sysrq-trigger", os.O_WRONLY)); print("sysrq open OK")
except OSError as e:
    print("sysrq", errno.errorcode[e.errno])
call("init_module", 175, None, 0, b"")
call("kexec_load", 246, 0, 0, None, 0)
call("ptrace", 101, 16, 0, 0, 0)
call("bpf", 321, 0, None, 0)
call("io_uring_setup", 425, 1, None)
call("open_by_handle_at", 304, -100, None, 0)
call("keyctl", 250, 0, 0, 0, 0, 0)
`
	out := mustInside(t, sbx, "root", "python3 -c '"+py+"'")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		denied := len(f) >= 2 && (f[len(f)-1] == "EPERM" || f[len(f)-1] == "EACCES" || f[0] == "sysrq" && f[1] == "ENOENT")
		if !denied {
			t.Errorf("root in the sandbox: %q, want EPERM or EACCES (or no sysrq-trigger at all)", l)
		}
	}
}
