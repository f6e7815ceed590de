package netpolicy

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// BenchmarkSetupTeardown measures one sandbox network's life: Setup and
// Teardown are reported apart as setup-ms/op and teardown-ms/op.
func BenchmarkSetupTeardown(b *testing.B) {
	m := quietManager(b, 20)
	ctx := context.Background()
	var setup, teardown time.Duration
	for b.Loop() {
		id := newID()
		start := time.Now()
		if _, err := m.Setup(ctx, id); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := m.Teardown(ctx, id); err != nil {
			b.Fatal(err)
		}
		setup += mid.Sub(start)
		teardown += time.Since(mid)
	}
	b.ReportMetric(float64(setup.Microseconds())/1000/float64(b.N), "setup-ms/op")
	b.ReportMetric(float64(teardown.Microseconds())/1000/float64(b.N), "teardown-ms/op")
}

// BenchmarkApply measures a live policy change of one sandbox among 50.
func BenchmarkApply(b *testing.B) {
	m := quietManager(b, 20)
	ctx := context.Background()
	var id string
	for range 50 {
		n, err := m.Setup(ctx, newID())
		if err != nil {
			b.Fatal(err)
		}
		id = n.ID
	}
	policies := []sandbox.NetworkPolicy{
		{Internet: true, DenyOut: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}},
		{AllowOut: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("203.0.113.7/32")}},
	}
	i := 0
	for b.Loop() {
		if err := m.Apply(ctx, id, policies[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
