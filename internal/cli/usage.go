package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cubicle-dev/cubicle/client"
)

// verbs lists the client verbs in the order of the usage text.
func verbs() []*verb {
	return []*verb{
		{"create", "[--template T] [--resolution WxH] [--timeout D] [--metadata K=V]... [--env K=V]... [--no-internet]",
			"create a sandbox on the server and print its ID once its desktop is ready", setupCreate},
		{"ls", "[--state running,paused] [--metadata K=V]...", "list your sandboxes on the server", setupLs},
		{"inspect", "ID", "print a sandbox as JSON", setupInspect},
		{"kill", "ID...", "kill sandboxes", setupKill},
		{"view", "ID [--control] [--ttl D] [--resize off|scale] [--window ID]",
			"print a URL that shows the sandbox's desktop live in a browser", setupView},
		{"exec", "ID [--env K=V]... [--cwd DIR] [--user root] [-i] -- PROGRAM [ARGS]...",
			"run a program in a sandbox, stream its output and exit with its code", setupExec},
		{"cp", "LOCAL ID:/PATH | ID:/PATH LOCAL", "copy a file into or out of a sandbox (\"-\" is standard input or output)", setupCp},
		{"screenshot", "[-o FILE|-] [--format png|jpeg] [--quality N] [--region X,Y,W,H] [--width N] [--height N] [--cursor]",
			"capture the screen to a PNG or JPEG file (-o FILE, \"-\" for standard output)", setupScreenshot},
		{"click", "[X Y] [--button B] [--double|--triple|--count N] [--modifiers K,K]",
			"click at X Y, or where the pointer is", setupClick},
		{"move", "X Y", "move the pointer to X Y", setupMove},
		{"mousedown", "[X Y] [--button B]", "press a mouse button and keep it down", setupMouseButton("mousedown")},
		{"mouseup", "[X Y] [--button B]", "release a mouse button", setupMouseButton("mouseup")},
		{"drag", "X1 Y1 X2 Y2 [X Y]... [--button B] [--modifiers K,K]",
			"press a button at X1 Y1, move through the points and release it at the last", setupDrag},
		{"scroll", "up|down|left|right [N]", "turn the mouse wheel N clicks (default 1) where the pointer is", setupScroll},
		{"type", "TEXT|- [--paste]", "type TEXT, or standard input for \"-\"", setupType},
		{"key", "COMBO [COMBO]...", "press key combinations such as ctrl+l or Return, one after the other", setupKey},
		{"cursor", "", "print the pointer position", setupCursor},
		{"screen", "", "print the screen size", setupScreen},
		{"windows", "[--class C] [--title T]", "list the application windows", setupWindows},
		{"window-title", "ID", "print the title of a window", setupWindowTitle},
		{"focus", "ID", "raise a window and give it the keyboard focus", setupFocus},
		{"launch", "APP [URI] | --command -- ARGV...", "start an application by .desktop name, or a program by argv; print its pid", setupLaunch},
		{"open", "TARGET", "open a file or URL with its default application; print the pid", setupOpen},
		{"clipboard", "[set TEXT|-]", "print the text on the clipboard, or set it", setupClipboard},
		{"wait", "MS", "pause the desktop for MS milliseconds, in order with other calls", setupWait},
		{"do", "FILE.json|- [--screenshot-out FILE]", "run a batch of actions from a JSON file and print the results", setupDo},
		{"ready", "[--wait DURATION]", "report whether the desktop is ready, or wait until it is", setupReady},
	}
}

func findVerb(name string) *verb {
	for _, v := range verbs() {
		if v.name == name {
			return v
		}
	}
	return nil
}

// mainUsage is the text of "cubicle help".
func mainUsage() string {
	var b strings.Builder
	b.WriteString(`cubicle drives Cubicle desktops: it creates sandboxes on a server, runs
commands and copies files in them, and drives a desktop (screenshots, mouse,
keyboard, windows and applications) through its agent or the server.

usage: cubicle VERB [ARGUMENTS] [FLAGS]

Verbs:
`)
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, v := range verbs() {
		fmt.Fprintf(tw, "  %s\t%s\n", v.name, v.summary)
	}
	fmt.Fprintf(tw, "  %s\t%s\n", "help", "print this text, or the usage and flags of one verb: cubicle help VERB")
	_ = tw.Flush()
	b.WriteString(`
Running Cubicle (each takes -h):
  serve         run the server: sandboxes, the /v1 and E2B APIs, the live view and the dashboard
  keys          create, list and revoke the server's API keys
  template      build, list and remove the templates sandboxes start from
  mcp           serve the desktop tools to an MCP client (stdio or HTTP)
  agent         run the agent of one desktop (inside each sandbox, or on a host display)
  version       print the version
`)
	fmt.Fprintf(&b, `
Flags of every verb:
  --agent URL      the agent (default $%s, else %s)
  --token TOKEN    its access token (default $%s)
  --json           print machine-readable JSON
  --timeout D      limit for each call to the agent (default 30s)
  --sandbox ID     drive the sandbox ID through the server instead of an agent
  --server URL     the server (default $%s, else %s)

The server verbs (create, ls, inspect, kill, view, exec, cp) and --sandbox need an
API key of the server in $%s.

Coordinates are whole pixels from the top left corner. Flags and arguments
may come in any order; "--" ends the flags. Exit status: 0 done, 1 a call
failed, 2 bad or missing arguments.
`, envAgentURL, client.DefaultAgentURL, envToken, envServerURL, client.DefaultServerURL, envAPIKey)
	return b.String()
}

// verbHelp is the text of "cubicle help VERB": usage line, summary, flags.
func verbHelp(v *verb) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n\n%s.\n", v.usage(), capitalize(v.summary))
	if d := verbDetails(v.name); d != "" {
		b.WriteString("\n" + d)
	}
	fs := flag.NewFlagSet(v.name, flag.ContinueOnError)
	v.setup(fs)
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		left := dashed(f.Name)
		if name != "" {
			left += " " + strings.ToUpper(name)
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		lines = append(lines, "  "+left+"\t"+usage+"\n")
	})
	if len(lines) > 0 {
		b.WriteString("\nFlags:\n")
		tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		for _, l := range lines {
			fmt.Fprint(tw, l)
		}
		_ = tw.Flush()
	}
	b.WriteString("\nFlags of every verb: --agent URL, --token TOKEN, --json, --timeout D, --sandbox ID,\n--server URL (see cubicle help).\n")
	return b.String()
}

// verbDetails is what a verb's help says beyond its summary.
func verbDetails(name string) string {
	switch name {
	case "screenshot":
		return `It prints the file's path, format, size and length; with -o - the picture
goes to standard output and nothing else is printed.
`
	case "click":
		return `Examples: cubicle click 640 400 --double
          cubicle click --button right --modifiers ctrl
`
	case "drag":
		return `Example: cubicle drag 100 100 400 300
`
	case "type":
		return `The text is typed exactly as given, newlines included; --paste is quicker
for long text.
`
	case "key":
		return `Key names are X keysym names (Return, Page_Down, F5) or aliases (enter,
ctrl, cmd, esc, page_down); a lone + is the plus key.
Example: cubicle key ctrl+a Delete
`
	case "windows":
		return `GEOMETRY is WIDTHxHEIGHT+X+Y.
`
	case "window-title", "focus":
		return `ID is decimal or 0x hex, as "cubicle windows" shows it.
`
	case "launch":
		return `Examples: cubicle launch firefox-esr https://example.com
          cubicle launch --command -- xterm -e top
`
	case "clipboard":
		return `With "set -" the text comes from standard input.
`
	case "wait":
		return `MS may also be a duration such as 1.5s; at most 60000.
`
	case "do":
		return `FILE holds a batch, {"actions": [...], "settle": {"quiet_ms": 100},
"screenshot": {"format": "png"}}, or just an array of actions:
  [{"type": "click", "x": 10, "y": 20}, {"type": "type", "text": "hi"}]
The batch stops at the first action that fails; those that ran are printed.
`
	case "create":
		return `Its --timeout is the sandbox's time to live, not a limit on the call;
extend it later through the SDK. Example:
  cubicle create --resolution 1280x800 --metadata owner=ci --timeout 30m
`
	case "exec":
		return `The program runs as argv, no shell: use -- sh -c 'SCRIPT' for one. Its
output streams as it comes; the exit status is the program's (124 when its
--timeout killed it, 128+N for signal N). There is no time limit unless
--timeout is given.
Example: cubicle exec SANDBOX -- ls -la /home/user
`
	case "cp":
		return `A remote path that ends in / or names a directory gets the local file's
name; so does a local directory. --timeout, when given, bounds the copy.
Examples: cubicle cp report.pdf SANDBOX:/home/user/
          cubicle cp SANDBOX:/tmp/screen.png .
`
	case "ready":
		return `The exit status is 0 when the desktop is ready and 1 when it is not.
`
	}
	return ""
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// runHelp prints the main usage, or one verb's.
func runHelp(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		fmt.Fprint(stdout, mainUsage())
		return exitOK
	case 1:
		if v := findVerb(args[0]); v != nil {
			fmt.Fprint(stdout, verbHelp(v))
			return exitOK
		}
		fmt.Fprintf(stderr, "cubicle: help: unknown verb %q\nrun \"cubicle help\" for the list of verbs\n", args[0])
		return exitUsage
	}
	fmt.Fprintf(stderr, "cubicle: help: takes at most one verb, got %d arguments\nusage: cubicle help [VERB]\n", len(args))
	return exitUsage
}
