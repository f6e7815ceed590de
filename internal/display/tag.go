package display

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// taggedPIDs returns the processes whose environment carries TagEnv=id,
// other than this one. Zombies have no environment left and are not listed.
func taggedPIDs(id string) []int {
	tag := []byte(TagEnv + "=" + id)
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
		if hasTag(pid, tag) {
			out = append(out, pid)
		}
	}
	return out
}

// hasTag reports whether the environment of pid holds the entry tag.
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

// signalTagged sends sig to every process tagged with id. It holds a pidfd
// while it checks the tag again, so a reused pid is never signalled.
func signalTagged(id string, sig unix.Signal) int {
	tag := []byte(TagEnv + "=" + id)
	n := 0
	for _, pid := range taggedPIDs(id) {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		if hasTag(pid, tag) && unix.PidfdSendSignal(fd, sig, nil, 0) == nil {
			n++
		}
		unix.Close(fd)
	}
	return n
}

// killTagged ends every process tagged with id, daemons the session
// re-parented away from us included: SIGTERM, then SIGKILL for those still
// there after a second or when ctx ends.
func killTagged(ctx context.Context, id string) error {
	if signalTagged(id, unix.SIGTERM) == 0 {
		return nil
	}
	if waitUntagged(ctx, id, time.Second) {
		return nil
	}
	for range 50 {
		signalTagged(id, unix.SIGKILL)
		if waitUntagged(context.WithoutCancel(ctx), id, 200*time.Millisecond) {
			return nil
		}
	}
	return fmt.Errorf("display: processes %v survive SIGKILL", taggedPIDs(id))
}

// waitUntagged polls until no process carries the tag, for at most d.
func waitUntagged(ctx context.Context, id string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if len(taggedPIDs(id)) == 0 {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
