package apitype

import (
	"encoding/json"
	"errors"
	"time"
)

// CommandRequest is the body of POST /v1/commands on the agent.
type CommandRequest struct {
	// Cmd is what to run; required.
	Cmd *CommandLine `json:"cmd"`
	// Env adds to (and overrides) the desktop environment.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is the working directory: absolute, "~/..." or relative to the
	// home directory; "" is the home directory.
	Cwd string `json:"cwd,omitempty"`
	// User is "" or "user" for the desktop user, or "root".
	User string `json:"user,omitempty"`
	// Background answers with CommandStarted at once instead of streaming
	// CommandEvents until the command ends.
	Background bool `json:"background,omitempty"`
	// TimeoutMS kills the command after so many milliseconds; nil is the
	// agent's default, 0 is no limit.
	TimeoutMS *int64 `json:"timeout_ms,omitempty"`
	// Stdin keeps the command's stdin open for POST /v1/commands/{pid}/stdin.
	Stdin bool `json:"stdin,omitempty"`
}

// CommandLine is the "cmd" of a CommandRequest: a script, which the agent
// runs with `bash -l -c` as one argument (a JSON string), or an argv run
// without a shell (a JSON array of strings).
type CommandLine struct {
	Script string
	Argv   []string
}

// MarshalJSON writes Argv when it is set, else Script.
func (c CommandLine) MarshalJSON() ([]byte, error) {
	if c.Argv != nil {
		return json.Marshal(c.Argv)
	}
	return json.Marshal(c.Script)
}

// UnmarshalJSON reads a non-empty string into Script or an array of
// strings into Argv.
func (c *CommandLine) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.Script); err == nil {
		c.Argv = nil
		if c.Script == "" {
			return errors.New(`"cmd" is an empty string`)
		}
		return nil
	}
	c.Script = ""
	if err := json.Unmarshal(b, &c.Argv); err != nil {
		return errors.New(`"cmd" must be a string (run with bash -l -c) or an array of strings (argv)`)
	}
	return nil
}

// CommandStarted is the answer of POST /v1/commands with Background set.
type CommandStarted struct {
	PID int `json:"pid"`
}

// Types of CommandEvent.
const (
	EventStart   = "start"   // PID
	EventStdout  = "stdout"  // Data
	EventStderr  = "stderr"  // Data
	EventDropped = "dropped" // Bytes
	EventEnd     = "end"     // CommandEnd
)

// CommandEvent is one line of the NDJSON stream (application/x-ndjson)
// that POST /v1/commands and GET /v1/commands/{pid}/output answer with: a
// start, the output in order, and an end once the command has ended.
type CommandEvent struct {
	// Type is EventStart, EventStdout, EventStderr, EventDropped or EventEnd.
	Type string `json:"type"`
	PID  int    `json:"pid,omitempty"`
	// Data is a piece of stdout or stderr (base64 in JSON).
	Data []byte `json:"data,omitempty"`
	// Bytes is how much output was lost before the next event.
	Bytes int64 `json:"bytes,omitempty"`
	// CommandEnd is set on the end event only.
	*CommandEnd
}

// CommandEnd is how a command ended, in the end CommandEvent.
type CommandEnd struct {
	// ExitCode is -1 when a signal ended the command.
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	// Signal is the signal that ended it ("SIGKILL"), if one did.
	Signal string `json:"signal,omitempty"`
	// TimedOut is set when its timeout killed it.
	TimedOut bool `json:"timed_out,omitempty"`
}

// CommandInfo describes a running command in the answer of
// GET /v1/commands.
type CommandInfo struct {
	PID        int       `json:"pid"`
	Cmd        []string  `json:"cmd"`
	Background bool      `json:"background"`
	User       string    `json:"user"`
	Cwd        string    `json:"cwd"`
	Stdin      bool      `json:"stdin"`
	StartedAt  time.Time `json:"started_at"`
}

// StdinRequest is the body of POST /v1/commands/{pid}/stdin: data to
// write, then the end of the input when Close is set.
type StdinRequest struct {
	Data  []byte `json:"data,omitempty"`
	Close bool   `json:"close,omitempty"`
}

// SignalRequest is the optional body of POST /v1/commands/{pid}/kill.
type SignalRequest struct {
	// Signal is a name ("SIGTERM", "TERM") or number; "" is SIGKILL.
	Signal string `json:"signal"`
}
