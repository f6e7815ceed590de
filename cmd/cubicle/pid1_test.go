package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
)

// children lists the host pids whose parent is ppid, with their state.
func children(ppid int) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out[pid] = f[0] + " " + s[strings.IndexByte(s, '(')+1:i]
		}
	}
	return out
}

// TestAgentAsPID1 runs the agent as pid 1 of a new pid namespace, as in a
// sandbox: orphans re-parented to it are reaped, and SIGTERM stops it
// cleanly.
func TestAgentAsPID1(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("a pid namespace needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
	n := freeDisplay(t)
	addr := freePort(t)
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
		binary, "agent", "--display", ":"+strconv.Itoa(n), "--listen", addr, "--session", "none")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	}()

	ctx := context.Background()
	sbx, err := client.ConnectAgent("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sbx.Close()
	if _, err := sbx.WaitReady(ctx, time.Minute); err != nil {
		t.Fatalf("not ready: %v", err)
	}

	// The agent is unshare's only child; in its namespace it is pid 1.
	var agent int
	for pid := range children(cmd.Process.Pid) {
		agent = pid
	}
	if agent == 0 {
		t.Fatal("no agent process under unshare")
	}

	// The shell exits at once; its two sleeps become orphans of pid 1.
	if _, err := sbx.LaunchCommand(ctx, "sh", "-c", "sleep 0.5 & sleep 0.5 & exit 0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the orphaned sleeps under the agent", 10*time.Second, func() (bool, string) {
		kids := children(agent)
		sleeps := 0
		for _, s := range kids {
			if strings.HasSuffix(s, " sleep") {
				sleeps++
			}
		}
		return sleeps == 2, fmt.Sprint(kids)
	})
	waitFor(t, "the orphans to be reaped", 10*time.Second, func() (bool, string) {
		kids := children(agent)
		for _, s := range kids {
			if strings.HasPrefix(s, "Z ") || strings.HasSuffix(s, " sleep") {
				return false, fmt.Sprint(kids)
			}
		}
		return true, ""
	})

	syscall.Kill(agent, syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("agent as pid 1 exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent as pid 1 did not stop within 30s of SIGTERM")
	}
	if !strings.Contains(log.String(), "agent listening") {
		t.Errorf("log lacks the start line:\n%s", log.String())
	}
}
