package display

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// loop restarts parts that died, starts and stops parts on request, and
// replaces parts whose options changed, until ctx ends.
func (s *Supervisor) loop(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait := s.reconcile(ctx)
		var due <-chan time.Time
		if wait > 0 {
			t.Reset(wait)
			due = t.C
		}
		select {
		case <-ctx.Done():
			return
		case p := <-s.exits:
			s.onExit(ctx, p)
		case <-s.wake:
		case <-due:
		}
	}
}

// reconcile brings the parts to what is wanted: it stops parts that are no
// longer wanted, have other options or lost a dependency, and starts parts
// that are wanted, have their dependencies and are due. It returns how long
// until the next part is due, or 0 when none waits.
func (s *Supervisor) reconcile(ctx context.Context) time.Duration {
	for acted := true; acted && ctx.Err() == nil; {
		acted = false
		for _, p := range s.parts {
			if ctx.Err() != nil {
				return 0
			}
			s.mu.Lock()
			lost := p.cur != nil && !s.depsUpLocked(p)
			stale := lost || p.cur != nil && (!p.want || p.cur.key != p.key)
			if lost {
				p.restarting = true
			}
			s.mu.Unlock()
			if stale {
				s.stopPart(ctx, p)
				acted = true
			}
			s.mu.Lock()
			due := p.want && p.cur == nil && s.depsUpLocked(p) && !time.Now().Before(p.next)
			s.mu.Unlock()
			if due {
				if err := s.startPart(ctx, p); err != nil && ctx.Err() == nil {
					s.log.Warn("display: start failed", "part", p.name, "err", err)
				}
				acted = true
			}
		}
	}
	var wait time.Duration
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.parts {
		if p.want && p.cur == nil && s.depsUpLocked(p) {
			if d := time.Until(p.next); d > 0 && (wait == 0 || d < wait) {
				wait = d
			}
		}
	}
	return wait
}

// depsUpLocked reports whether every dependency of p runs.
func (s *Supervisor) depsUpLocked(p *part) bool {
	for _, d := range p.deps {
		if d.cur == nil || d.cur.exited() {
			return false
		}
	}
	return true
}

// startPart launches p and records the outcome.
func (s *Supervisor) startPart(ctx context.Context, p *part) error {
	s.mu.Lock()
	key := p.key
	s.mu.Unlock()
	var proc *proc
	err := ctx.Err()
	if err == nil {
		proc, err = p.launch(ctx)
	} else {
		err = fmt.Errorf("display: start %s: %w", p.name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p.attempts++
	p.attemptKey, p.attemptErr = key, err
	if err != nil {
		p.lastErr = err
		p.restarting = true
		s.scheduleLocked(p, false)
		s.notifyLocked()
		return err
	}
	p.cur = proc
	if p.restarting {
		p.restarts++
		p.restarting = false
	}
	s.notifyLocked()
	return nil
}

// scheduleLocked sets when p may start again after a failure. A part that
// ran healthyAfter starts over at minBackoff.
func (s *Supervisor) scheduleLocked(p *part, healthy bool) {
	if healthy || p.backoff == 0 {
		p.backoff = minBackoff
	}
	p.next = time.Now().Add(p.backoff)
	p.backoff = min(2*p.backoff, maxBackoff)
}

// stopPart stops p's process, if any, and what is left of its process group.
func (s *Supervisor) stopPart(ctx context.Context, p *part) {
	s.mu.Lock()
	cur := p.cur
	s.mu.Unlock()
	if cur == nil {
		return
	}
	stopProc(ctx, cur, stopGrace)
	syscall.Kill(-cur.pid, syscall.SIGKILL)
	s.mu.Lock()
	if p.cur == cur {
		p.cur = nil
	}
	s.notifyLocked()
	s.mu.Unlock()
}

// onExit handles the end of a process: when it died on its own, its part is
// scheduled for a restart and the parts that depend on it are stopped, to
// start again once it is back.
func (s *Supervisor) onExit(ctx context.Context, proc *proc) {
	s.mu.Lock()
	var p *part
	for _, q := range s.parts {
		if q.cur == proc {
			p = q
		}
	}
	if p == nil || proc.stopping.Load() {
		s.mu.Unlock()
		return
	}
	ran := time.Since(proc.started)
	p.cur = nil
	err := fmt.Errorf("exited after %s: %w", ran.Round(time.Millisecond), proc.exitError())
	p.lastErr = err
	p.restarting = true
	if s.depsUpLocked(p) {
		s.scheduleLocked(p, ran >= healthyAfter)
	} else {
		// It died with a dependency: it starts again once that is back.
		p.next = time.Time{}
	}
	var dependents []*part
	for _, q := range s.parts {
		if q.cur != nil && s.dependsLocked(q, p) {
			q.restarting = true
			dependents = append(dependents, q)
		}
	}
	s.notifyLocked()
	s.mu.Unlock()

	syscall.Kill(-proc.pid, syscall.SIGKILL) // what is left of its group
	s.log.Warn("display: part exited", "part", p.name, "pid", proc.pid, "err", err)
	for i := len(dependents) - 1; i >= 0; i-- {
		s.stopPart(ctx, dependents[i])
	}
}

// dependsLocked reports whether q depends on p, directly or not.
func (s *Supervisor) dependsLocked(q, p *part) bool {
	for _, d := range q.deps {
		if d == p || s.dependsLocked(d, p) {
			return true
		}
	}
	return false
}
