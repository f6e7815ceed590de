package sandbox

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// scheduler keeps the end of every live sandbox in a min-heap; one
// goroutine (Manager.run) waits for the earliest.
type scheduler struct {
	mu   sync.Mutex
	heap timerHeap
	byID map[string]*timerItem
	// wake tells the loop that the earliest end may have changed.
	wake chan struct{}
}

type timerItem struct {
	id    string
	at    time.Time
	index int
}

func newScheduler() scheduler {
	return scheduler{byID: make(map[string]*timerItem), wake: make(chan struct{}, 1)}
}

// set arms (or moves) the timer of id.
func (s *scheduler) set(id string, at time.Time) {
	s.mu.Lock()
	if it, ok := s.byID[id]; ok {
		it.at = at
		heap.Fix(&s.heap, it.index)
	} else {
		it := &timerItem{id: id, at: at}
		heap.Push(&s.heap, it)
		s.byID[id] = it
	}
	s.mu.Unlock()
	s.notify()
}

// remove disarms the timer of id.
func (s *scheduler) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.byID[id]; ok {
		heap.Remove(&s.heap, it.index)
		delete(s.byID, id)
	}
}

// when returns the end of id, if its timer is armed.
func (s *scheduler) when(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.byID[id]
	if !ok {
		return time.Time{}, false
	}
	return it.at, true
}

func (s *scheduler) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next returns the earliest end.
func (s *scheduler) next() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.heap) == 0 {
		return time.Time{}, false
	}
	return s.heap[0].at, true
}

// due removes and returns the ids whose end is at or before now.
func (s *scheduler) due(now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for len(s.heap) > 0 && !s.heap[0].at.After(now) {
		it := heap.Pop(&s.heap).(*timerItem)
		delete(s.byID, it.id)
		ids = append(ids, it.id)
	}
	return ids
}

type timerHeap []*timerItem

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].id < h[j].id
	}
	return h[i].at.Before(h[j].at)
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	it := x.(*timerItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *timerHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

// pruneEvery is how often killed sandboxes past KeepKilled leave the store.
const pruneEvery = time.Hour

// run kills sandboxes whose timeout ended, removes those whose init
// ended on its own, and prunes the store, until ctx ends.
func (m *Manager) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	exits := m.exits()
	for {
		for _, id := range m.sched.due(time.Now()) {
			m.startExpire(id)
		}
		if at, ok := m.sched.next(); ok {
			timer.Reset(time.Until(at))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-m.sched.wake:
		case <-timer.C:
		case <-prune.C:
			m.prune(ctx)
		case id, ok := <-exits:
			if !ok {
				exits = nil
				continue
			}
			m.startExited(id)
		}
	}
}

// startExpire kills a timed-out sandbox in the background, a few at a
// time.
func (m *Manager) startExpire(id string) {
	ctx, end, err := m.begin(context.Background())
	if err != nil {
		return // closing: the next start re-arms the timeout
	}
	go func() {
		defer end()
		select {
		case m.expiring <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-m.expiring }()
		m.expire(ctx, id)
	}()
}

// expire kills id if its end has come.
func (m *Manager) expire(ctx context.Context, id string) {
	e, err := m.lookup(ctx, id)
	if err != nil {
		return // killed meanwhile, or closing
	}
	defer e.release()
	if e.rec.EndAt.After(time.Now()) {
		m.sched.set(id, e.rec.EndAt) // extended meanwhile
		return
	}
	if err := m.kill(ctx, e, EventTimeout); err != nil {
		m.log.Error("kill timed-out sandbox", "sandbox_id", id, "error", err, "retry_in", retryKill)
		m.sched.set(id, time.Now().Add(retryKill))
		return
	}
	m.log.Info("sandbox timed out", "sandbox_id", id, "owner", e.rec.Owner)
}

func (m *Manager) prune(ctx context.Context) {
	n, err := m.store.Prune(ctx, time.Now().Add(-m.cfg.KeepKilled))
	if err != nil {
		m.log.Warn("prune killed sandboxes", "error", err)
		return
	}
	if n > 0 {
		m.log.Debug("pruned killed sandboxes", "count", n)
	}
}
