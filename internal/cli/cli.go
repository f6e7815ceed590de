// Package cli implements the client verbs of the cubicle command: the ones
// that drive a desktop through its agent (screenshot, click, type, key,
// windows, launch, do, ready, ...). Each verb has its own flag set; flags and
// arguments may come in any order, and "--" ends the flags.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // a call failed
	exitUsage = 2 // bad or missing arguments
)

// Environment variables that give flag defaults.
const (
	envAgentURL = "CUBICLE_AGENT_URL"
	envToken    = "CUBICLE_TOKEN"
)

// Run runs the client verb args[0] with the arguments that follow and
// returns the exit code: 0 on success, 1 when a call failed, 2 for bad or
// missing arguments. "help", "-h" and "--help" print the usage.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, stdin, stdout, stderr, os.Getenv)
}

// verb is one client verb.
type verb struct {
	name    string
	args    string // what follows the name on the usage line
	summary string // one line for the verb list
	// setup registers the verb's flags on fs and returns the function that
	// runs the verb with them.
	setup func(fs *flag.FlagSet) func(c *cmd, args []string) error
}

// usage is the verb's usage line.
func (v *verb) usage() string {
	if v.args == "" {
		return "cubicle " + v.name
	}
	return "cubicle " + v.name + " " + v.args
}

// cmd is what a verb runs with.
type cmd struct {
	ctx     context.Context
	name    string
	sb      *client.Sandbox
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	json    bool
	timeout time.Duration
	// The server of the sandbox verbs and --sandbox, its client once made.
	serverURL, apiKey string
	srv               *client.Server
	// printedJSON is set when the verb printed its JSON answer, error
	// included, so that no second JSON error is printed after it.
	printedJSON bool
}

// callCtx bounds one call to the agent by --timeout.
func (c *cmd) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, c.timeout)
}

// printJSON prints v as indented JSON.
func (c *cmd) printJSON(v any) error {
	c.printedJSON = true
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// usageError is a bad or missing argument.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// common are the flags of every verb.
type common struct {
	agent   string
	token   string
	json    bool
	timeout time.Duration
	sandbox string
	server  string
}

// register adds the common flags to fs. A verb whose own flag has the name
// of a common one keeps its own: create's --timeout is the sandbox's time to
// live, and its calls get createCallLimit.
func (g *common) register(fs *flag.FlagSet) {
	fs.StringVar(&g.agent, "agent", "", "agent `URL` (default $"+envAgentURL+", else "+client.DefaultAgentURL+")")
	fs.StringVar(&g.token, "token", "", "access `token` (default $"+envToken+")")
	fs.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	if fs.Lookup("timeout") == nil {
		fs.DurationVar(&g.timeout, "timeout", 30*time.Second, "limit for each call to the agent")
	} else {
		g.timeout = createCallLimit
	}
	fs.StringVar(&g.sandbox, "sandbox", "", "drive the sandbox `ID` through the server instead of an agent")
	fs.StringVar(&g.server, "server", "", "server `URL` (default $"+envServerURL+", else "+client.DefaultServerURL+")")
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage())
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		return runHelp(args[1:], stdout, stderr)
	}
	v := findVerb(name)
	if v == nil {
		fmt.Fprintf(stderr, "cubicle: unknown verb %q\nrun \"cubicle help\" for the list of verbs\n", name)
		return exitUsage
	}

	fs := flag.NewFlagSet(v.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	runVerb := v.setup(fs)
	var g common
	g.register(fs)
	pos, err := parseArgs(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, verbHelp(v))
		return exitOK
	}
	if err != nil {
		return usageFail(stderr, v, flagError(err))
	}
	if g.timeout <= 0 {
		return usageFail(stderr, v, fmt.Sprintf("--timeout must be more than 0, got %s", g.timeout))
	}
	agentURL := firstNonEmpty(g.agent, getenv(envAgentURL), client.DefaultAgentURL)
	token := firstNonEmpty(g.token, getenv(envToken))
	sb, err := client.ConnectAgent(agentURL, client.WithToken(token), client.WithUserAgent("cubicle-cli"))
	if err != nil {
		return usageFail(stderr, v, "--agent: "+err.Error())
	}
	defer sb.Close()

	c := &cmd{ctx: ctx, name: v.name, sb: sb, stdin: stdin, stdout: stdout, stderr: stderr, json: g.json, timeout: g.timeout,
		serverURL: firstNonEmpty(g.server, getenv(envServerURL), client.DefaultServerURL), apiKey: getenv(envAPIKey)}
	defer c.close()
	viaServer := g.sandbox != "" || isServerVerb(v.name)
	if g.sandbox != "" && !isServerVerb(v.name) {
		err = c.useSandbox(g.sandbox)
	}
	if err == nil {
		err = runVerb(c, pos)
	}
	var (
		ue *usageError
		ee *exitError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return usageFail(stderr, v, ue.msg)
	case errors.As(err, &ee):
		return ee.code
	}
	fmt.Fprintf(stderr, "cubicle: %s: %v\n", v.name, err)
	h := hint(err)
	if viaServer {
		h = c.serverHint(err)
	}
	if h != "" {
		fmt.Fprintf(stderr, "hint: %s\n", h)
	}
	if c.json && !c.printedJSON {
		_ = c.printJSON(errorBody(err))
	}
	return exitFail
}

// usageFail reports a usage error with the verb's usage line.
func usageFail(stderr io.Writer, v *verb, msg string) int {
	fmt.Fprintf(stderr, "cubicle: %s: %s\nusage: %s\n", v.name, msg, v.usage())
	return exitUsage
}

// hint says what to do about a failed call, when there is something to say.
func hint(err error) string {
	var de *desktop.Error
	fromAgent := errors.As(err, &de)
	switch {
	case errors.Is(err, desktop.ErrUnauthorized):
		return "pass --token or set " + envToken
	case !fromAgent && errors.Is(err, desktop.ErrUnavailable):
		return "is the agent running? start it with: cubicle agent --display :1 (or point --agent or " + envAgentURL + " at it)"
	case fromAgent && de.Code == desktop.CodeNotReady:
		return "the desktop is still starting; wait for it with: cubicle ready --wait 60s"
	case errors.Is(err, context.DeadlineExceeded):
		return "the agent did not answer within --timeout; raise it, e.g. --timeout 2m"
	}
	return ""
}

// errorBody is the JSON printed for a failed call under --json, in the
// shape of the agent's error body.
func errorBody(err error) any {
	var de *desktop.Error
	if !errors.As(err, &de) {
		de = &desktop.Error{Code: desktop.CodeOf(err), Message: err.Error(), Index: -1}
	}
	return struct {
		Error *desktop.Error `json:"error"`
	}{de}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// parseArgs parses flags and positional arguments in any order. An argument
// that looks like a negative number is positional; everything after "--"
// is.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "--":
			return append(pos, args[1:]...), nil
		case !isFlag(a):
			pos = append(pos, a)
			args = args[1:]
			continue
		}
		n := 1
		if takesValue(fs, a) && len(args) > 1 {
			n = 2
		}
		if err := fs.Parse(args[:n]); err != nil {
			return nil, err
		}
		args = args[n:]
	}
	return pos, nil
}

// flagError rewords an error of package flag with the flags written the
// way the usage text writes them.
func flagError(err error) string {
	s := err.Error()
	if name, ok := strings.CutPrefix(s, "flag provided but not defined: -"); ok {
		return "unknown flag " + dashed(name)
	}
	if name, ok := strings.CutPrefix(s, "flag needs an argument: -"); ok {
		return dashed(name) + " needs a value"
	}
	if rest, ok := strings.CutPrefix(s, "invalid value "); ok {
		if val, err := strconv.QuotedPrefix(rest); err == nil {
			if name, cause, ok := strings.Cut(strings.TrimPrefix(rest[len(val):], " for flag -"), ": "); ok {
				return fmt.Sprintf("%s: invalid value %s: %s", dashed(name), val, cause)
			}
		}
	}
	return s
}

// dashed writes a flag name with its dashes: -o, --button.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// isFlag reports whether s is a flag (or "--") rather than an argument.
func isFlag(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	for _, r := range s[1:] {
		if (r < '0' || r > '9') && r != '.' {
			return true
		}
	}
	return false // a negative number
}

// takesValue reports whether s is a flag written without "=" whose value is
// the next argument.
func takesValue(fs *flag.FlagSet, s string) bool {
	name := strings.TrimLeft(s, "-")
	if strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}
