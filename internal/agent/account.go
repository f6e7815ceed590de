package agent

import (
	"fmt"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/desktop"
)

// account is who a command runs as and who file operations act as.
type account struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
	home   string // "" when unknown: then HOME of the desktop environment
	// switchTo is set when the agent runs as root and the account is
	// another user: processes get its credentials and file operations its
	// filesystem ids.
	switchTo bool
}

// Account names a request may give.
const (
	accountUser = "user" // the desktop user (the default)
	accountRoot = "root"
)

// account resolves the account a request names: "" or "user" (or the
// desktop user's own name) is the desktop user; "root" is root and needs
// an agent that runs as root.
func (a *Agent) account(name string) (*account, error) {
	euid := uint32(os.Geteuid())
	u := a.cfg.Display.User
	switch {
	case name == accountRoot:
		if euid != 0 {
			return nil, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "user",
				Message: "user root is not available: the agent does not run as root"}
		}
		return &account{name: "root", home: "/root"}, nil
	case name == "" || name == accountUser || (u != nil && name == u.Name):
	default:
		known := `"user" or "root"`
		if u != nil {
			known = fmt.Sprintf(`"user" (%s) or "root"`, u.Name)
		}
		return nil, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "user",
			Message: fmt.Sprintf("unknown user %q; use %s", name, known)}
	}
	if u == nil || euid != 0 {
		return a.self(), nil
	}
	if u.UID == 0 {
		return &account{name: u.Name, home: u.Home}, nil
	}
	return &account{name: u.Name, uid: u.UID, gid: u.GID, groups: append([]uint32(nil), u.Groups...),
		home: u.Home, switchTo: true}, nil
}

// self is the account of the agent process.
func (a *Agent) self() *account {
	acct := &account{uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}
	acct.name = strconv.FormatUint(uint64(acct.uid), 10)
	if cu, err := user.Current(); err == nil {
		acct.name = cu.Username
	}
	if u := a.cfg.Display.User; u != nil && u.UID == acct.uid {
		acct.name, acct.home = u.Name, u.Home
	}
	return acct
}

// homeIn returns the account's home, or HOME from env when it has none.
func (acct *account) homeIn(env []string) string {
	if acct.home != "" {
		return acct.home
	}
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "HOME="); ok && v != "" {
			return v
		}
	}
	return "/"
}

// sysProcAttr returns what starts a process as the account: its
// credentials when the agent switches to it, always a process group of its
// own, and SIGKILL when the agent dies so no command outlives it.
func (acct *account) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if acct.switchTo {
		attr.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid, Groups: append([]uint32{}, acct.groups...)}
	}
	return attr
}

// do runs fn with the filesystem identity of the account, so that the
// kernel checks permissions and owns created files as that user.
//
// When the agent runs as root and the account is another user, fn runs on
// a goroutine locked to its own OS thread whose filesystem uid and gid
// (setfsuid/setfsgid) and supplementary groups are the account's: these are
// per-thread on Linux, and a non-zero fsuid drops the filesystem
// capabilities (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, ...)
// from that thread only. The rest of the agent keeps running as root. The
// thread gets its identity back afterwards; if that fails, the goroutine
// ends still locked, which makes the Go runtime destroy the thread. fn must
// not start goroutines that touch the filesystem: they run elsewhere, as
// root. File descriptors opened by fn keep the rights they were opened
// with on any thread.
func (acct *account) do(fn func() error) error {
	if !acct.switchTo {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restore, err := acct.enter()
		if err != nil {
			done <- err
			return // the thread may be half switched: let it die
		}
		ferr := fn()
		if err := restore(); err != nil {
			done <- fmt.Errorf("agent: restore the filesystem identity: %w", err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// enter switches the calling thread to the account's filesystem identity
// and returns the function that switches it back.
func (acct *account) enter() (func() error, error) {
	oldGroups, err := unix.Getgroups()
	if err != nil {
		return nil, fmt.Errorf("agent: getgroups: %w", err)
	}
	oldUID, oldGID := unix.Geteuid(), unix.Getegid()
	restore := func() error {
		if err := setFSIDs(oldUID, oldGID); err != nil {
			return err
		}
		return unix.Setgroups(oldGroups)
	}
	groups := make([]int, len(acct.groups))
	for i, g := range acct.groups {
		groups[i] = int(g)
	}
	if err := unix.Setgroups(groups); err != nil {
		return nil, fmt.Errorf("agent: setgroups: %w", err)
	}
	if err := setFSIDs(int(acct.uid), int(acct.gid)); err != nil {
		return nil, err
	}
	return restore, nil
}

// setFSIDs sets the filesystem gid, then uid, of the calling thread and
// checks that they took: setfsuid reports no errors, only the old value.
func setFSIDs(uid, gid int) error {
	unix.SetfsgidRetGid(gid)
	unix.SetfsuidRetUid(uid)
	gotGID, _ := unix.SetfsgidRetGid(-1)
	gotUID, _ := unix.SetfsuidRetUid(-1)
	if gotUID != uid || gotGID != gid {
		return fmt.Errorf("agent: set filesystem ids to %d:%d: still %d:%d", uid, gid, gotUID, gotGID)
	}
	return nil
}
