package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
)

// BenchmarkCreateKill measures, through the real server and SDK, the time
// from POST /v1/sandboxes to a ready desktop (cold: a new sandbox each
// time) and the time to kill one. Reproduce with:
//
//	go test -run '^$' -bench CreateKill -benchtime 20x ./cmd/cubicle/
func BenchmarkCreateKill(b *testing.B) {
	srv, _ := serveForTest(b)
	c, err := client.New(srv.url, srv.key)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var creates, kills []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		sbx, err := c.Create(ctx, client.CreateOptions{Timeout: 5 * time.Minute})
		if err != nil {
			b.Fatalf("create: %v\n%s", err, srv.logText())
		}
		creates = append(creates, time.Since(start))
		start = time.Now()
		if err := sbx.Kill(ctx); err != nil {
			b.Fatal(err)
		}
		kills = append(kills, time.Since(start))
	}
	b.StopTimer()
	report := func(d []time.Duration, name string) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Milliseconds()), name+"-p50-ms")
		b.ReportMetric(float64(d[int(0.95*float64(len(d)-1))].Milliseconds()), name+"-p95-ms")
	}
	report(creates, "create")
	report(kills, "kill")
}
