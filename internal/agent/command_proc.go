package agent

import (
	"fmt"
	"time"

	"github.com/cubicle-dev/cubicle/internal/proc"
)

// Bounds of one command's output (see package proc).
const (
	outputCap = proc.OutputCap
	readChunk = proc.ReadChunk
)

// endInfo is how a command ended, as the API reports it.
type endInfo struct {
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	Signal   string `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
}

// command is one command started through the API.
type command struct {
	*proc.Proc
	pid     int
	info    commandInfo
	timeout time.Duration
}

// endOf is the end of c as the API reports it.
func (c *command) endOf(e proc.End) endInfo {
	end := endInfo{ExitCode: e.ExitCode, Error: e.Error, Signal: e.Signal, TimedOut: e.TimedOut}
	if e.TimedOut {
		end.Error = fmt.Sprintf("the command ran past its timeout of %s and was killed", c.timeout)
	}
	return end
}
