package proc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Tagged returns the processes, other than this one, whose environment
// holds the entry tag ("KEY=value"). Zombies have no environment left and
// are not listed.
func Tagged(tag string) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	self := os.Getpid()
	var out []int
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid == self {
			continue
		}
		if hasTag(pid, []byte(tag)) {
			out = append(out, pid)
		}
	}
	return out
}

func hasTag(pid int, tag []byte) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.Equal(kv, tag) {
			return true
		}
	}
	return false
}

// signalTagged sends sig to every process tagged with tag. It holds a pidfd
// while it checks the tag again, so a reused pid is never signalled.
func signalTagged(tag string, sig unix.Signal) int {
	n := 0
	for _, pid := range Tagged(tag) {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		if hasTag(pid, []byte(tag)) && unix.PidfdSendSignal(fd, sig, nil, 0) == nil {
			n++
		}
		unix.Close(fd)
	}
	return n
}

// KillTagged ends every process tagged with tag, daemons that left their
// process group and parent included: SIGTERM, then SIGKILL for those still
// there after a second or once ctx ends.
func KillTagged(ctx context.Context, tag string) error {
	if signalTagged(tag, unix.SIGTERM) == 0 {
		return nil
	}
	if waitUntagged(ctx, tag, time.Second) {
		return nil
	}
	for range 50 {
		signalTagged(tag, unix.SIGKILL)
		if waitUntagged(context.WithoutCancel(ctx), tag, 200*time.Millisecond) {
			return nil
		}
	}
	return fmt.Errorf("proc: processes %v survive SIGKILL", Tagged(tag))
}

// waitUntagged polls until no process carries tag, for at most d.
func waitUntagged(ctx context.Context, tag string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if len(Tagged(tag)) == 0 {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
