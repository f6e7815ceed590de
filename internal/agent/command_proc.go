package agent

import (
	"fmt"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/internal/proc"
)

// Bounds of one command's output (see package proc).
const (
	outputCap = proc.OutputCap
	readChunk = proc.ReadChunk
)

// command is one command started through the API.
type command struct {
	*proc.Proc
	pid     int
	info    apitype.CommandInfo
	timeout time.Duration
}

// endOf is the end of c as the API reports it.
func (c *command) endOf(e proc.End) apitype.CommandEnd {
	end := apitype.CommandEnd{ExitCode: e.ExitCode, Error: e.Error, Signal: e.Signal, TimedOut: e.TimedOut}
	if e.TimedOut {
		end.Error = fmt.Sprintf("the command ran past its timeout of %s and was killed", c.timeout)
	}
	return end
}
