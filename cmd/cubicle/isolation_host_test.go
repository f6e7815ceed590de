package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
)

// inside runs script in sbx as user ("" for the desktop user, or "root")
// and returns what it wrote and whether it exited with 0. Errors other
// than a non-zero exit fail the test.
func inside(t *testing.T, sbx *client.Sandbox, user, script string) (out string, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := sbx.Commands.Run(ctx, script, client.CommandOptions{User: user, Timeout: 90 * time.Second})
	var exit *client.CommandExitError
	switch {
	case err == nil:
		return res.Stdout + res.Stderr, true
	case errors.As(err, &exit):
		return exit.Result.Stdout + exit.Result.Stderr, false
	default:
		t.Fatalf("run %q as %q: %v", script, user, err)
		return "", false
	}
}

// mustInside is inside for a command that has to succeed.
func mustInside(t *testing.T, sbx *client.Sandbox, user, script string) string {
	t.Helper()
	out, ok := inside(t, sbx, user, script)
	if !ok {
		t.Fatalf("run %q as %q failed: %s", script, user, out)
	}
	return out
}

// randomWord is a fresh lower-case hex word for markers.
func randomWord(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// cgroupFile is a file of the sandbox's cgroup under controller.
func cgroupFile(id, controller, name string) string {
	return filepath.Join("/sys/fs/cgroup", controller, "cubicle", id, name)
}

// readCgroupField reads "key value" lines from a cgroup file and returns
// the value of key.
func readCgroupField(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == key {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %q", path, key)
}

// readCgroupInt reads a cgroup file that holds one number.
func readCgroupInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// sandboxInit finds, on the host, the pid of the process that is pid 1
// in the sandbox id: the member of its pids cgroup whose innermost NSpid
// is 1.
func sandboxInit(t *testing.T, id string) int {
	t.Helper()
	b, err := os.ReadFile(cgroupFile(id, "pids", "cgroup.procs"))
	if err != nil {
		t.Fatalf("the sandbox's cgroup: %v", err)
	}
	for _, s := range strings.Fields(string(b)) {
		st, err := os.ReadFile(filepath.Join("/proc", s, "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(st), "\n") {
			f := strings.Fields(l)
			if len(f) > 2 && f[0] == "NSpid:" && f[len(f)-1] == "1" {
				pid, _ := strconv.Atoi(s)
				return pid
			}
		}
	}
	t.Fatalf("no process of sandbox %s is pid 1 in its namespace (members %q)", id, b)
	return 0
}

// pidNamespace is the pid namespace (as /proc/<pid>/ns/pid reads) of the
// sandbox id's init.
func pidNamespace(t *testing.T, id string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", sandboxInit(t, id)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// processesInNamespace lists host processes (zombies included) in the pid
// namespace ns.
func processesInNamespace(ns string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "pid")); err == nil && l == ns {
			found = append(found, e.Name())
		}
	}
	return found
}

// initLog opens the output of the sandbox id's init (and so of its
// agent) now, so that it stays readable when the sandbox's directory goes,
// and returns a function that reads it: the lines that say why a Go
// program crashed, if it did, or else the last 4 KiB. The file is closed
// at the end of the test.
func initLog(t *testing.T, stateDir, id string) func() string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(stateDir, "*", id, "init.log"))
	if len(paths) != 1 {
		t.Fatalf("init logs of %s: %q", id, paths)
	}
	f, err := os.Open(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return func() string {
		st, err := f.Stat()
		if err != nil {
			return err.Error()
		}
		b := make([]byte, st.Size())
		n, _ := f.ReadAt(b, 0)
		b = b[:n]
		var why []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "runtime: ") {
				why = append(why, l)
			}
		}
		if len(why) > 0 {
			return strings.Join(why, "\n")
		}
		return string(b[max(0, len(b)-4096):])
	}
}

// idRange is a range of host ids: [base, base+size).
type idRange struct{ base, size int64 }

// hostIDRange reads the host uid range of a process from its uid_map.
func hostIDRange(t *testing.T, pid int) (idRange, string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		t.Fatalf("uid_map of %d: %q", pid, b)
	}
	base, _ := strconv.ParseInt(f[1], 10, 64)
	size, _ := strconv.ParseInt(f[2], 10, 64)
	return idRange{base, size}, strings.Join(f[:3], " ")
}
