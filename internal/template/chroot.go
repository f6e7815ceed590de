package template

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// chrootEnv is the whole environment of everything run in the new root.
func chrootEnv() []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"DEBIAN_FRONTEND=noninteractive",
		"LANG=C.UTF-8",
	}
	return append(env, proxyEnv()...)
}

// proxyEnv passes the host's HTTP proxy settings on, so apt and
// debootstrap work where the mirror is only reached through a proxy.
func proxyEnv() []string {
	var env []string
	for _, k := range []string{"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// chroot runs programs in a root filesystem.
type chroot struct {
	root string
	log  io.Writer // every program's output goes here too
}

// run runs argv (argv[0] an absolute path inside the root) as root in the
// chroot, with stdin as its standard input, and returns its output. The
// program is in a process group of its own, killed (the whole group) when
// ctx ends or when the thread that started it exits. onLine, if not nil,
// sees every line of output as it comes.
func (c *chroot) run(ctx context.Context, argv []string, stdin io.Reader, onLine func(string)) ([]byte, error) {
	out := &outputTail{log: c.log, onLine: onLine}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = chrootEnv()
	cmd.Stdin = stdin
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: c.root, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	out.flush()
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if tail := out.tail(); tail != "" {
			return nil, fmt.Errorf("%w: %s", err, tail)
		}
		return nil, err
	}
	return out.all.Bytes(), nil
}

// sh runs a shell command in the chroot.
func (c *chroot) sh(ctx context.Context, script string, onLine func(string), args ...string) error {
	argv := append([]string{"/bin/sh", "-c", script, "sh"}, args...)
	_, err := c.run(ctx, argv, nil, onLine)
	return err
}

// writeScript writes its standard input to the file "$1" with mode "$2",
// making the parent directories, all resolved inside the chroot.
const writeScript = `set -e
umask 022
mkdir -p -- "$(dirname -- "$1")"
cat > "$1"
chmod "$2" "$1"`

// writeFile writes content to path inside the chroot.
func (c *chroot) writeFile(ctx context.Context, path, mode, content string) error {
	_, err := c.run(ctx, []string{"/bin/sh", "-c", writeScript, "sh", path, mode}, strings.NewReader(content), nil)
	return err
}

// addUserScript creates the group and user "$1" with id "$2".
const addUserScript = `set -e
groupadd -g "$2" "$1"
useradd -m -u "$2" -g "$2" -s /bin/bash -d "/home/$1" "$1"`

// addUser creates u, with passwordless sudo if it asks for it.
func (c *chroot) addUser(ctx context.Context, u *User) error {
	if err := c.sh(ctx, addUserScript, nil, u.Name, fmt.Sprint(u.UID)); err != nil {
		return err
	}
	if !u.Sudo {
		return nil
	}
	return c.writeFile(ctx, "/etc/sudoers.d/"+u.Name, "0440", u.Name+" ALL=(ALL:ALL) NOPASSWD: ALL\n")
}

// The policy-rc.d that keeps package scripts from starting services while
// the steps run.
const (
	policyRCPath    = "/usr/sbin/policy-rc.d"
	policyRCContent = "#!/bin/sh\n# No services start while the template is built.\nexit 101\n"
)

// finishScript leaves the root as sandboxes should get it: no package
// caches or lists (apt-get update fetches them again), none of the build
// host's network identity, nothing in the temporary directories.
const finishScript = `set -e
rm -f ` + policyRCPath + `
if command -v apt-get >/dev/null; then apt-get clean; fi
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old
rm -rf /tmp/* /tmp/.[!.]* /var/tmp/* /var/tmp/.[!.]* /root/.cache
rm -f /etc/resolv.conf
: > /etc/resolv.conf
printf 'localhost\n' > /etc/hostname
if [ ! -e /etc/hosts ]; then printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts; fi`

// packages lists what dpkg has installed.
func (c *chroot) packages(ctx context.Context) ([]Package, error) {
	out, err := c.run(ctx, []string{"/usr/bin/dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n"}, nil, nil)
	if err != nil {
		return nil, err
	}
	var pkgs []Package
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 3 || !strings.HasPrefix(f[0], "ii") {
			continue
		}
		pkgs = append(pkgs, Package{Name: f[1], Version: f[2]})
	}
	slices.SortFunc(pkgs, func(a, b Package) int { return strings.Compare(a.Name, b.Name) })
	return pkgs, nil
}

// killGroup kills the process group led by pid.
func killGroup(pid int) error {
	if err := unix.Kill(-pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

// outputTail passes a program's output to the log, keeps all of it (for
// the few programs whose output is their result) and its last lines (for
// errors), and hands complete lines to onLine.
type outputTail struct {
	log     io.Writer
	onLine  func(string)
	all     bytes.Buffer
	partial []byte
	last    []string
}

const tailLines = 8

func (o *outputTail) Write(p []byte) (int, error) {
	if o.log != nil {
		o.log.Write(p)
	}
	if o.all.Len() < 16<<20 {
		o.all.Write(p)
	}
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		o.line(string(o.partial[:i]))
		o.partial = o.partial[i+1:]
	}
	if len(o.partial) > 64*1024 {
		o.line(string(o.partial))
		o.partial = o.partial[:0]
	}
	return len(p), nil
}

func (o *outputTail) flush() {
	if len(o.partial) > 0 {
		o.line(string(o.partial))
		o.partial = nil
	}
}

func (o *outputTail) line(l string) {
	l = strings.TrimSpace(strings.ReplaceAll(l, "\r", " "))
	if l == "" {
		return
	}
	o.last = append(o.last, l)
	if len(o.last) > tailLines {
		o.last = o.last[1:]
	}
	if o.onLine != nil {
		o.onLine(l)
	}
}

func (o *outputTail) tail() string { return strings.Join(o.last, " | ") }
