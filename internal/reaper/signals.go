package reaper

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// ForwardSignals calls to for every signal in sigs (SIGTERM, SIGINT and
// SIGHUP when none are given) that this process receives, until stop is
// called. The handler is installed before ForwardSignals returns; stop
// removes it and waits for the forwarding goroutine to end.
func ForwardSignals(to func(os.Signal), sigs ...os.Signal) (stop func()) {
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP}
	}
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case sig := <-ch:
				to(sig)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			wg.Wait()
		})
	}
}

// ToGroup returns a function that sends a signal to the process group pgid,
// for ForwardSignals.
func ToGroup(pgid int) func(os.Signal) {
	return func(sig os.Signal) {
		if s, ok := sig.(syscall.Signal); ok {
			syscall.Kill(-pgid, s)
		}
	}
}
