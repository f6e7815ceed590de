package main

import (
	"runtime"
	"sync"
)

// prewarmThreads makes the Go runtime start n OS threads now and keep them
// idle for later. Inside a sandbox the agent is pid 1 and shares the
// sandbox's pids limit with everything it runs: when a fork bomb uses the
// limit up, the runtime could not start a thread it needs and would abort,
// taking the sandbox with it. Threads made up front are reused instead.
func prewarmThreads(n int) {
	var locked, release sync.WaitGroup
	locked.Add(n)
	release.Add(1)
	var done sync.WaitGroup
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			// A goroutine locked to its thread holds that thread: with all
			// n locked at once, the runtime must have made n of them.
			runtime.LockOSThread()
			locked.Done()
			release.Wait()
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	release.Done()
	done.Wait()
}
