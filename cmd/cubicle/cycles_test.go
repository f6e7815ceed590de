package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
)

var cycles = flag.Int("cycles", 200, "sandboxes TestCreateKillCycles creates and kills")

// TestCreateKillCycles creates and kills -cycles desktop sandboxes through
// the SDK, a few at a time, and checks that nothing of any of them is left
// on the host and that the server's own file descriptors and threads do
// not grow with the count.
func TestCreateKillCycles(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("cubicle serve needs root")
	}
	srv, state := serveForTest(t)
	c, err := client.New(srv.url, srv.key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	// One cycle first, so that what the server opens once (the store,
	// the template's files, the firewall table) is open when counting.
	cycle := func() (string, error) {
		s, err := c.Create(ctx, client.CreateOptions{Timeout: 5 * time.Minute})
		if err != nil {
			return "", fmt.Errorf("create: %w", err)
		}
		if _, err := s.GetCursorPosition(ctx); err != nil {
			c.Kill(ctx, s.ID())
			return s.ID(), fmt.Errorf("use %s: %w", s.ID(), err)
		}
		return s.ID(), c.Kill(ctx, s.ID())
	}
	if _, err := cycle(); err != nil {
		t.Fatal(err)
	}
	pid := srv.cmd.Process.Pid
	fds, threads := countDir(t, pid, "fd"), countDir(t, pid, "task")
	netns, _ := os.ReadDir("/run/cubicle/netns")
	netnsBefore := len(netns)

	var (
		mu   sync.Mutex
		ids  []string
		errs []error
	)
	inParallel(3, *cycles, func(int) {
		id, err := cycle()
		mu.Lock()
		defer mu.Unlock()
		if id != "" {
			ids = append(ids, id)
		}
		if err != nil {
			errs = append(errs, err)
		}
	})
	for i, err := range errs {
		if i < 5 {
			t.Errorf("cycle: %v", err)
		}
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d cycles failed", len(errs), *cycles)
	}
	for _, id := range ids {
		if l := leftovers(id); len(l) > 0 {
			t.Errorf("sandbox %s left %v", id, l)
		}
	}
	if left, _ := os.ReadDir("/run/cubicle/netns"); len(left) > netnsBefore {
		t.Errorf("network namespaces: %d before the cycles, %d after", netnsBefore, len(left))
	}
	if left, _ := os.ReadDir(state + "/sandboxes"); len(left) > 0 {
		t.Errorf("sandbox state directories left: %d", len(left))
	}
	page, err := c.List(ctx, client.ListOptions{})
	if err != nil || len(page.Sandboxes) > 0 {
		t.Errorf("running sandboxes after the cycles: %v %v", page, err)
	}
	// Idle connections and a few more goroutines' threads come and go;
	// one per cycle would show.
	if now := countDir(t, pid, "fd"); now > fds+20 {
		t.Errorf("server file descriptors: %d before the cycles, %d after", fds, now)
	}
	if now := countDir(t, pid, "task"); now > threads+20 {
		t.Errorf("server threads: %d before the cycles, %d after", threads, now)
	}
}

// countDir counts the entries of /proc/<pid>/<dir>.
func countDir(t *testing.T, pid int, dir string) int {
	t.Helper()
	e, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/" + dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

// inParallel calls fn(i) for i from 0 to n-1, workers at a time.
func inParallel(workers, n int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
