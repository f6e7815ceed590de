package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Environment variables of the sandbox verbs.
const (
	envServerURL = "CUBICLE_URL"
	envAPIKey    = "CUBICLE_API_KEY"
)

// createCallLimit bounds one call of a verb whose --timeout means something
// else (create: the sandbox's time to live); creating waits for the
// desktop to be ready.
const createCallLimit = 5 * time.Minute

// isServerVerb reports whether a verb talks to the server rather than to
// one desktop.
func isServerVerb(name string) bool {
	switch name {
	case "create", "ls", "inspect", "kill", "view", "exec", "cp":
		return true
	}
	return false
}

// server returns the client of the server, made on first use.
func (c *cmd) server() (*client.Server, error) {
	if c.srv != nil {
		return c.srv, nil
	}
	if c.apiKey == "" {
		return nil, usagef("no API key: set %s to a key of the server at %s", envAPIKey, c.serverURL)
	}
	srv, err := client.New(c.serverURL, c.apiKey, client.WithUserAgent("cubicle-cli"))
	if err != nil {
		var de *desktop.Error
		if errors.As(err, &de) && de.Field == "url" {
			return nil, usagef("--server: %s", de.Message)
		}
		return nil, err
	}
	c.srv = srv
	return srv, nil
}

// connect returns the sandbox id, through the server (resuming it if it
// is paused).
func (c *cmd) connect(id string) (*client.Sandbox, error) {
	srv, err := c.server()
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	return srv.Connect(ctx, id)
}

// useSandbox makes the desktop verbs drive the sandbox id through the
// server instead of an agent.
func (c *cmd) useSandbox(id string) error {
	sb, err := c.connect(id)
	if err != nil {
		return err
	}
	c.sb.Close()
	c.sb = sb
	return nil
}

// callCtxFor bounds a call by d.
func (c *cmd) callCtxFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, d)
}

// close releases the server client, if one was made.
func (c *cmd) close() {
	if c.srv != nil {
		c.srv.Close()
	}
}

// serverHint says what to do about a failed call to the server.
func (c *cmd) serverHint(err error) string {
	var de *desktop.Error
	fromServer := errors.As(err, &de)
	switch {
	case errors.Is(err, desktop.ErrUnauthorized):
		return "set " + envAPIKey + " to an API key of the server at " + c.serverURL
	case !fromServer && errors.Is(err, desktop.ErrUnavailable):
		return "is the server running? start it with: cubicle serve (or point --server or " + envServerURL + " at it)"
	case fromServer && de.Code == desktop.CodeNotFound && de.Field == "id":
		return "list your sandboxes with: cubicle ls"
	}
	return hint(err)
}

// pairs is a repeatable K=V flag.
type pairs struct {
	what string // "metadata" or "env"
	m    map[string]string
}

func (p *pairs) String() string { return "" }

func (p *pairs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%s must be KEY=VALUE, got %q", p.what, s)
	}
	if p.m == nil {
		p.m = map[string]string{}
	}
	p.m[k] = v
	return nil
}

// printable is a sandbox as the verbs print it: without its access token.
func printable(info client.SandboxInfo) client.SandboxInfo {
	info.AccessToken = ""
	return info
}

func setupCreate(fs *flag.FlagSet) func(*cmd, []string) error {
	template := fs.String("template", "", "the `NAME` of the root filesystem to start from (default: the server's, desktop)")
	resolution := fs.String("resolution", "", "screen `SIZE`, WIDTHxHEIGHT such as 1280x800 (default 1024x768)")
	dpi := fs.Int("dpi", 0, "screen resolution in `N` dots per inch (default 96)")
	timeout := fs.Duration("timeout", 0, "time to live `D` before the sandbox is killed (default: the server's, 5m)")
	md := &pairs{what: "--metadata"}
	fs.Var(md, "metadata", "label `K=V` to find the sandbox by; repeat for more")
	env := &pairs{what: "--env"}
	fs.Var(env, "env", "environment variable `K=V` of every command; repeat for more")
	noInternet := fs.Bool("no-internet", false, "no outbound internet access")
	return func(c *cmd, args []string) error {
		if len(args) > 0 {
			return usagef("takes no arguments, got %q", args[0])
		}
		o := client.CreateOptions{Template: *template, DPI: *dpi, Timeout: *timeout, Metadata: md.m, Env: env.m}
		if *resolution != "" {
			var w, h int
			if n, err := fmt.Sscanf(*resolution, "%dx%d", &w, &h); n != 2 || err != nil || fmt.Sprintf("%dx%d", w, h) != *resolution {
				return usagef("--resolution must be WIDTHxHEIGHT such as 1280x800, got %q", *resolution)
			}
			o.Resolution = desktop.Size{Width: w, Height: h}
		}
		if *timeout < 0 {
			return usagef("--timeout must be positive, got %s", *timeout)
		}
		if *noInternet {
			o.Network = &client.Network{Internet: false}
		}
		srv, err := c.server()
		if err != nil {
			return err
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		sb, err := srv.Create(ctx, o)
		if err != nil {
			return err
		}
		if !c.json {
			_, err := fmt.Fprintln(c.stdout, sb.ID())
			return err
		}
		info, err := sb.Info(ctx)
		if err != nil {
			return err
		}
		return c.printJSON(printable(*info))
	}
}

func setupLs(fs *flag.FlagSet) func(*cmd, []string) error {
	state := fs.String("state", "", "only sandboxes in these `STATES`, comma separated: running, paused (default both)")
	md := &pairs{what: "--metadata"}
	fs.Var(md, "metadata", "only sandboxes labelled `K=V`; repeat to require more")
	return func(c *cmd, args []string) error {
		if len(args) > 0 {
			return usagef("takes no arguments, got %q; filter with --state or --metadata", args[0])
		}
		o := client.ListOptions{Metadata: md.m}
		if *state != "" {
			for _, s := range strings.Split(*state, ",") {
				if s != client.StateRunning && s != client.StatePaused {
					return usagef("--state takes running and paused, got %q", s)
				}
				o.State = append(o.State, s)
			}
		}
		srv, err := c.server()
		if err != nil {
			return err
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		list := []client.SandboxInfo{}
		for sb, err := range srv.All(ctx, o) {
			if err != nil {
				return err
			}
			list = append(list, printable(sb))
		}
		if c.json {
			return c.printJSON(list)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTEMPLATE\tSTATE\tSTARTED\tENDS\tMETADATA")
		for _, sb := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sb.ID, cell(sb.Template, maxTitle), sb.State,
				sb.StartedAt.UTC().Format(time.RFC3339), sb.EndAt.UTC().Format(time.RFC3339), cell(metadataText(sb.Metadata), maxTitle))
		}
		return tw.Flush()
	}
}

// metadataText shows metadata as k=v,k=v in key order.
func metadataText(md map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(md)) {
		parts = append(parts, k+"="+md[k])
	}
	return strings.Join(parts, ",")
}

func setupInspect(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		if len(args) != 1 {
			return usagef("takes one sandbox ID, got %d arguments", len(args))
		}
		srv, err := c.server()
		if err != nil {
			return err
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		info, err := srv.Get(ctx, args[0])
		if err != nil {
			return err
		}
		return c.printJSON(printable(*info))
	}
}

func setupKill(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		if len(args) == 0 {
			return usagef("takes the IDs of the sandboxes to kill")
		}
		srv, err := c.server()
		if err != nil {
			return err
		}
		var failed []error
		for _, id := range args {
			ctx, cancel := c.callCtx()
			err := srv.Kill(ctx, id)
			cancel()
			if err != nil {
				failed = append(failed, err)
				if len(args) > 1 {
					fmt.Fprintf(c.stderr, "cubicle: kill: %s: %v\n", id, err)
				}
				continue
			}
			if !c.json {
				fmt.Fprintln(c.stdout, id)
			}
		}
		switch {
		case len(failed) == 1 && len(args) == 1:
			return failed[0]
		case len(failed) > 0:
			return fmt.Errorf("%d of %d sandboxes were not killed", len(failed), len(args))
		}
		if c.json {
			return c.printJSON(map[string][]string{"killed": args})
		}
		return nil
	}
}

// exitError makes the command exit with code, having said all there is.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// explicitTimeout returns --timeout if it was given, else 0.
func explicitTimeout(fs *flag.FlagSet, c *cmd) time.Duration {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "timeout" })
	if set {
		return c.timeout
	}
	return 0
}

func setupExec(fs *flag.FlagSet) func(*cmd, []string) error {
	env := &pairs{what: "--env"}
	fs.Var(env, "env", "environment variable `K=V` for the command; repeat for more")
	cwd := fs.String("cwd", "", "working `DIR` (default the user's home)")
	user := fs.String("user", "", "run as `USER`: user (the desktop user) or root")
	stdin := fs.Bool("i", false, "send standard input to the command")
	fs.BoolVar(stdin, "stdin", false, "same as -i")
	return func(c *cmd, args []string) error {
		if len(args) < 2 {
			return usagef("takes a sandbox ID and the command: cubicle exec ID -- PROGRAM [ARGS]...")
		}
		id, argv := args[0], args[1:]
		if argv[0] == "" {
			return usagef("the program name is empty")
		}
		o := client.CommandOptions{Env: env.m, Cwd: *cwd, User: *user, Timeout: client.NoTimeout, Stdin: *stdin,
			OnStdout: func(b []byte) { c.stdout.Write(b) },
			OnStderr: func(b []byte) { c.stderr.Write(b) },
		}
		if d := explicitTimeout(fs, c); d > 0 {
			o.Timeout = d
		}
		var input []byte
		if *stdin {
			b, err := io.ReadAll(io.LimitReader(c.stdin, maxInput+1))
			if err != nil {
				return fmt.Errorf("read standard input: %w", err)
			}
			if len(b) > maxInput {
				return usagef("standard input is over %d MiB; copy big input with cubicle cp first", maxInput>>20)
			}
			input = b
		}
		sb, err := c.connect(id)
		if err != nil {
			return err
		}
		res, err := runCommand(c, sb, argv, o, input)
		var ee *client.CommandExitError
		switch {
		case errors.As(err, &ee):
			return &exitError{code: exitCodeOf(res)}
		case err != nil:
			return err
		}
		if c.json {
			return c.printJSON(map[string]any{"pid": res.PID, "exit_code": res.ExitCode})
		}
		return nil
	}
}

// runCommand runs argv and waits for it; with input, the command reads it
// on stdin.
func runCommand(c *cmd, sb *client.Sandbox, argv []string, o client.CommandOptions, input []byte) (*client.CommandResult, error) {
	if !o.Stdin {
		return sb.Commands.RunArgv(c.ctx, argv, o)
	}
	ctx, cancel := c.callCtx()
	h, err := sb.Commands.StartArgv(ctx, argv, o)
	if err == nil && len(input) > 0 {
		err = h.SendStdin(ctx, input)
	}
	if err == nil {
		err = h.CloseStdin(ctx)
	}
	cancel()
	if err != nil {
		return nil, err
	}
	res, err := h.Wait(c.ctx)
	if c.ctx.Err() != nil {
		kctx, cancel := c.callCtx()
		h.Kill(kctx)
		cancel()
	}
	return res, err
}

// exitCodeOf is the exit status of the cubicle command for a command that
// failed: its own code, 124 for a timeout (as timeout(1)), 128+N for a
// signal.
func exitCodeOf(res *client.CommandResult) int {
	switch {
	case res.TimedOut:
		return 124
	case res.Signal != "":
		if n, ok := signalNumbers[res.Signal]; ok {
			return 128 + n
		}
		return 128
	case res.ExitCode > 0 && res.ExitCode < 256:
		return res.ExitCode
	}
	return exitFail
}

var signalNumbers = map[string]int{"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGABRT": 6, "SIGKILL": 9,
	"SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15}

// remotePath splits "ID:/path" into its parts; ok is false for a local
// path.
func remotePath(s string) (id, p string, ok bool) {
	id, p, found := strings.Cut(s, ":")
	if !found || id == "" || !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "~") {
		return "", "", false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return "", "", false
		}
	}
	return id, p, true
}

func setupCp(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		if len(args) != 2 {
			return usagef("takes a source and a destination, one of them ID:/path")
		}
		srcID, srcPath, srcRemote := remotePath(args[0])
		dstID, dstPath, dstRemote := remotePath(args[1])
		switch {
		case srcRemote && dstRemote:
			return usagef("copy between two sandboxes in two steps, through a local file")
		case !srcRemote && !dstRemote:
			return usagef("one of %q and %q must be a sandbox path, ID:/path", args[0], args[1])
		}
		ctx, cancel := c.ctx, func() {}
		if d := explicitTimeout(fs, c); d > 0 {
			ctx, cancel = c.callCtxFor(d)
		}
		defer cancel()
		var (
			n   int64
			src = args[0]
			dst = args[1]
		)
		if dstRemote {
			in := c.stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err // "open FILE: ..."
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil && st.IsDir() {
					return usagef("%s is a directory; copy files one by one or pack them with tar", args[0])
				}
				in = f
			}
			sb, err := c.connect(dstID)
			if err != nil {
				return err
			}
			if args[0] != "-" {
				if strings.HasSuffix(dstPath, "/") {
					dstPath += filepath.Base(args[0])
				} else if st, err := sb.Files.Stat(ctx, dstPath); err == nil && st.Type == "dir" {
					dstPath = path.Join(dstPath, filepath.Base(args[0]))
				}
			}
			info, err := sb.Files.WriteFrom(ctx, dstPath, in)
			if err != nil {
				return err
			}
			n, dst = info.Size, dstID+":"+info.Path
		} else {
			sb, err := c.connect(srcID)
			if err != nil {
				return err
			}
			rc, err := sb.Files.Open(ctx, srcPath)
			if err != nil {
				return err
			}
			defer rc.Close()
			out := c.stdout
			if args[1] != "-" {
				if st, err := os.Stat(dst); err == nil && st.IsDir() {
					dst = filepath.Join(dst, path.Base(srcPath))
				}
				f, err := os.Create(dst)
				if err != nil {
					return err // "open FILE: ..."
				}
				defer f.Close()
				out = f
			}
			if n, err = io.Copy(out, rc); err != nil {
				return fmt.Errorf("copy %s to %s: %w", src, dst, err)
			}
			if f, ok := out.(*os.File); ok && out != c.stdout {
				if err := f.Close(); err != nil {
					return fmt.Errorf("write %s: %w", dst, err)
				}
			}
			if args[1] == "-" {
				return nil
			}
		}
		if c.json {
			return c.printJSON(map[string]any{"source": src, "destination": dst, "bytes": n})
		}
		return nil
	}
}
