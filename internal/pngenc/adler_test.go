package pngenc

import (
	"fmt"
	"hash/adler32"
	"math/rand/v2"
	"testing"
)

func TestAdlerUpdateMatchesHashAdler32(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := []int{0, 1, 7, 8, 9, 15, 16, 17, 100, 5552, 5553, 1 << 16, 1<<16 + 3, 300000}
	for _, n := range lengths {
		for _, fill := range []string{"random", "0xff"} {
			t.Run(fmt.Sprintf("%d bytes %s", n, fill), func(t *testing.T) {
				p := make([]byte, n)
				for i := range p {
					p[i] = 0xff
					if fill == "random" {
						p[i] = byte(rng.Uint32())
					}
				}
				if got, want := adlerUpdate(1, p), adler32.Checksum(p); got != want {
					t.Errorf("adlerUpdate: got %08x, want %08x", got, want)
				}
				// In two pieces, split anywhere.
				k := n / 3
				if got, want := adlerUpdate(adlerUpdate(1, p[:k]), p[k:]), adler32.Checksum(p); got != want {
					t.Errorf("adlerUpdate in two pieces at %d: got %08x, want %08x", k, got, want)
				}
			})
		}
	}
}

func TestAdlerCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range [][2]int{{0, 0}, {0, 5}, {5, 0}, {1, 1}, {100, 65521}, {65521, 65522}, {70000, 200000}, {3, 131042}} {
		a, b := make([]byte, n[0]), make([]byte, n[1])
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		for i := range b {
			b[i] = 0xff - byte(rng.IntN(3))
		}
		got := adlerCombine(adler32.Checksum(a), adler32.Checksum(b), len(b))
		if want := adler32.Checksum(append(a, b...)); got != want {
			t.Errorf("combine of %d and %d bytes: got %08x, want %08x", n[0], n[1], got, want)
		}
	}
}

func FuzzAdler(f *testing.F) {
	f.Add([]byte("hello"), 2)
	f.Add(make([]byte, 70000), 69999)
	f.Fuzz(func(t *testing.T, p []byte, k int) {
		if k < 0 || k > len(p) {
			k = len(p) / 2
		}
		want := adler32.Checksum(p)
		if got := adlerUpdate(1, p); got != want {
			t.Errorf("adlerUpdate: got %08x, want %08x", got, want)
		}
		if got := adlerCombine(adler32.Checksum(p[:k]), adler32.Checksum(p[k:]), len(p)-k); got != want {
			t.Errorf("adlerCombine at %d: got %08x, want %08x", k, got, want)
		}
	})
}
