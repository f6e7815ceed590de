package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
)

var densityN = flag.Int("density", 100, "sandboxes BenchmarkIdleDensity keeps running")

// BenchmarkIdleDensity starts -density desktop sandboxes through the real
// server, lets them go idle, and then measures the API while they all
// run: one iteration is a GET of a sandbox, a list page of 100, and a
// cursor query through the proxy into a sandbox's agent (each in turn).
// It reports the latency percentiles of each call and the host memory
// each idle sandbox costs. Reproduce with:
//
//	go test -run '^$' -bench IdleDensity -benchtime 2000x -timeout 60m ./cmd/cubicle/ -density 100
func BenchmarkIdleDensity(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("cubicle serve needs root")
	}
	// The testing package calls a benchmark more than once; the sandboxes
	// are made once and stay until every benchmark is done.
	f := &densityFixture
	f.once.Do(func() { f.err = f.setUp(b) })
	if f.err != nil {
		b.Fatal(f.err)
	}
	srv, sandboxes, ctx := f.srv, f.sandboxes, context.Background()

	hc := &http.Client{}
	get := func(path string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+srv.key)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return nil
	}
	var getT, listT, cursorT []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := sandboxes[i%len(sandboxes)]
		start := time.Now()
		if err := get("/v1/sandboxes/" + s.ID()); err != nil {
			b.Fatal(err)
		}
		getT = append(getT, time.Since(start))
		start = time.Now()
		if err := get("/v1/sandboxes?limit=100"); err != nil {
			b.Fatal(err)
		}
		listT = append(listT, time.Since(start))
		start = time.Now()
		if _, err := s.GetCursorPosition(ctx); err != nil {
			b.Fatal(err)
		}
		cursorT = append(cursorT, time.Since(start))
	}
	b.StopTimer()
	report := func(d []time.Duration, name string) {
		slices.Sort(d)
		at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000 }
		b.ReportMetric(at(0.5), name+"-p50-ms")
		b.ReportMetric(at(0.99), name+"-p99-ms")
	}
	report(getT, "get")
	report(listT, "list")
	report(cursorT, "cursor")
	b.ReportMetric(float64(len(sandboxes)), "sandboxes")
	b.ReportMetric(float64(f.hostBytes)/float64(len(sandboxes))/(1<<20), "host-MB/sandbox")
	b.ReportMetric(float64(f.cgroupBytes)/float64(len(sandboxes))/(1<<20), "cgroup-MB/sandbox")
}

// densityFixture is BenchmarkIdleDensity's server and idle sandboxes.
var densityFixture idleFleet

// idleFleet is a server with many idle sandboxes.
type idleFleet struct {
	once      sync.Once
	err       error
	srv       *runningServer
	sandboxes []*client.Sandbox
	// hostBytes is how much MemAvailable fell with the sandboxes up;
	// cgroupBytes the sum of their cgroups' memory use.
	hostBytes, cgroupBytes int64
}

// setUp starts the server and the sandboxes, and registers their end.
func (f *idleFleet) setUp(tb testing.TB) error {
	state, err := os.MkdirTemp("", "cubicle-bench-")
	if err != nil {
		return err
	}
	os.Chmod(state, 0o755)
	srv := startServe(tb, state, freePort(tb))
	c, err := client.New(srv.url, srv.key)
	if err != nil {
		return err
	}
	ctx := context.Background()
	afterAll = append(afterAll, func() {
		for _, s := range f.sandboxes {
			if s != nil {
				s.Kill(ctx)
			}
		}
		c.Close()
		srv.stop(syscall.SIGTERM)
		os.RemoveAll(state)
	})
	f.srv = srv
	before := memAvailable(tb)
	f.sandboxes = make([]*client.Sandbox, *densityN)
	var (
		mu      sync.Mutex
		errs    []error
		created = time.Now()
	)
	inParallel(2, len(f.sandboxes), func(i int) { // two creations at a time: one per core
		s, err := c.Create(ctx, client.CreateOptions{Timeout: time.Hour})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("sandbox %d: %w", i, err))
		}
		f.sandboxes[i] = s
	})
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d creations failed; first: %w", len(errs), len(f.sandboxes), errs[0])
	}
	tb.Logf("%d sandboxes ready in %v", len(f.sandboxes), time.Since(created).Round(time.Second))
	time.Sleep(30 * time.Second) // let every desktop settle into idle
	f.hostBytes = before - memAvailable(tb)
	for _, s := range f.sandboxes {
		m, err := s.Metrics(ctx)
		if err != nil {
			return err
		}
		f.cgroupBytes += m.MemUsed
	}
	return nil
}

// memAvailable returns the host's MemAvailable in bytes.
func memAvailable(tb testing.TB) int64 {
	tb.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no MemAvailable in /proc/meminfo")
	return 0
}
