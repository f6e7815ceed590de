package sandbox

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestSchedulerAgainstModel runs random set/remove/due operations on the
// heap and on a plain map and compares what comes due.
func TestSchedulerAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := newScheduler()
	model := map[string]time.Time{}
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base
	for step := range 20000 {
		id := fmt.Sprintf("s%02d", rng.IntN(40))
		switch op := rng.IntN(10); {
		case op < 5:
			at := now.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
			s.set(id, at)
			model[id] = at
		case op < 7:
			s.remove(id)
			delete(model, id)
		default:
			now = now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
			got := s.due(now)
			var want []string
			for mid, at := range model {
				if !at.After(now) {
					want = append(want, mid)
					delete(model, mid)
				}
			}
			for _, id := range got {
				if _, armed := s.when(id); armed {
					t.Fatalf("step %d: %s still armed after it came due", step, id)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: due(%v) = %v, want %v", step, now.Sub(base), got, want)
			}
		}
		next, ok := s.next()
		var earliest time.Time
		for _, at := range model {
			if earliest.IsZero() || at.Before(earliest) {
				earliest = at
			}
		}
		if ok != (len(model) > 0) || (ok && !next.Equal(earliest)) {
			t.Fatalf("step %d: next() = %v, %v; want %v", step, next, ok, earliest)
		}
	}
}

func TestSchedulerWakes(t *testing.T) {
	s := newScheduler()
	s.set("a", time.Now())
	select {
	case <-s.wake:
	default:
		t.Fatal("set did not wake the loop")
	}
	s.set("a", time.Now())
	s.set("b", time.Now()) // a second notification does not block
	<-s.wake
	select {
	case <-s.wake:
		t.Fatal("two pending wake-ups; want at most one")
	default:
	}
}
