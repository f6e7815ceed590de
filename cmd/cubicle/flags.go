package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// parseFlags parses args into fs. When ok is false the command ends with
// code: 0 after -h, 2 after a usage error (fs has said what is wrong).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// parseOnlyFlags is parseFlags for commands that take no arguments.
func parseOnlyFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if code, ok := parseFlags(fs, args); !ok {
		return code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cubicle %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

// parseVerb takes args[0] as a verb ("create", "ls", ...) and parses the
// flags after it.
func parseVerb(fs *flag.FlagSet, args []string) (verb string, code int, ok bool) {
	if len(args) == 0 {
		fs.Usage()
		return "", 2, false
	}
	code, ok = parseFlags(fs, args[1:])
	return args[0], code, ok
}
