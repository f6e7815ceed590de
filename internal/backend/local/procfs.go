package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStat is what the backend reads from /proc/<pid>/stat.
type procStat struct {
	comm  string
	state byte
	start uint64 // clock ticks after boot
}

// readProcStat reads /proc/<pid>/stat.
func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(data)
}

func parseProcStat(data []byte) (procStat, error) {
	// The name is in parentheses and may hold anything, ')' included.
	open := bytes.IndexByte(data, '(')
	closing := bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return procStat{}, errors.New("malformed stat")
	}
	rest := strings.Fields(string(data[closing+1:]))
	// rest[0] is field 3 (state); the start time is field 22.
	if len(rest) < 20 || len(rest[0]) != 1 {
		return procStat{}, errors.New("malformed stat")
	}
	start, err := strconv.ParseUint(rest[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat: %w", err)
	}
	return procStat{comm: string(data[open+1 : closing]), state: rest[0][0], start: start}, nil
}

// alive reports whether pid is the process that started at start and has
// not exited.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := readProcStat(pid)
	return err == nil && st.start == start && st.state != 'Z' && st.state != 'X'
}
