// Command openai-agent lets an OpenAI model drive a Cubicle desktop with the
// Responses API's computer tool: it creates a sandbox (or connects to one,
// or straight to an agent), sends the task with the computer tool, runs
// every computer_call on the desktop and sends the screenshots back until
// the model stops calling the computer.
//
//	OPENAI_API_KEY=... CUBICLE_API_KEY=... go run ./examples/openai-agent "open firefox and search for cubicle"
//
// OPENAI_BASE_URL points it at another Responses API endpoint. Pending
// safety checks are shown and need a "y" on the terminal, unless
// --approve-safety-checks approves them all.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/openaicua"
	"github.com/cubicle-dev/cubicle/openaicua/openaisdk"
)

// config is what the flags say.
type config struct {
	Task string
	// Server mode: a sandbox on a Cubicle server.
	ServerURL string
	APIKey    string
	SandboxID string // connect to this sandbox instead of creating one
	Keep      bool   // leave a created sandbox running
	// Agent mode: straight to one agent.
	AgentURL string
	Token    string

	Model    string
	Preview  bool         // the computer_use_preview tool instead of computer
	Display  desktop.Size // zero: chosen for the screen
	MaxTurns int
	// ApproveAll acknowledges every safety check; otherwise each is asked
	// about on Prompt/In.
	ApproveAll bool
	Prompt     io.Writer
	In         io.Reader
	Log        *slog.Logger
}

func (c *config) validate() error {
	switch {
	case strings.TrimSpace(c.Task) == "":
		return errors.New("no task: pass what the model should do as the argument")
	case c.AgentURL == "" && c.APIKey == "":
		return errors.New("no Cubicle API key: set CUBICLE_API_KEY (or use --agent URL --token T)")
	case c.MaxTurns < 1:
		return errors.New("--max-turns must be positive")
	case !c.ApproveAll && (c.In == nil || c.Prompt == nil):
		return errors.New("safety checks need a terminal to ask on, or --approve-safety-checks")
	}
	return nil
}

func main() {
	cfg := config{Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), Prompt: os.Stderr, In: os.Stdin}
	var display string
	flag.StringVar(&cfg.ServerURL, "server", envOr("CUBICLE_URL", client.DefaultServerURL), "Cubicle server URL")
	flag.StringVar(&cfg.SandboxID, "sandbox", "", "connect to this sandbox instead of creating one")
	flag.BoolVar(&cfg.Keep, "keep", false, "leave the sandbox running at the end")
	flag.StringVar(&cfg.AgentURL, "agent", "", "talk straight to the agent at this URL instead of a server")
	flag.StringVar(&cfg.Token, "token", os.Getenv("CUBICLE_AGENT_TOKEN"), "access token of the agent (with --agent)")
	flag.StringVar(&cfg.Model, "model", string(shared.ChatModelGPT5_4), "OpenAI model")
	flag.BoolVar(&cfg.Preview, "preview", false, "use the computer_use_preview tool (with --model computer-use-preview)")
	flag.StringVar(&display, "display", "", "display size shown to the model: XGA, WXGA, FWXGA, 1080p or WxH (default: chosen for the screen)")
	flag.IntVar(&cfg.MaxTurns, "max-turns", 50, "most model turns")
	flag.BoolVar(&cfg.ApproveAll, "approve-safety-checks", false, "acknowledge every safety check without asking")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: openai-agent [flags] TASK\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	cfg.Task = strings.Join(flag.Args(), " ")
	cfg.APIKey = os.Getenv("CUBICLE_API_KEY")
	if display != "" {
		d, err := openaicua.ParseDisplay(display)
		if err != nil {
			fmt.Fprintln(os.Stderr, "openai-agent:", err)
			os.Exit(2)
		}
		cfg.Display = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "openai-agent:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// approver returns the approval hook for safety checks.
func approver(cfg config) func(context.Context, []openaicua.SafetyCheck) error {
	if cfg.ApproveAll {
		return func(context.Context, []openaicua.SafetyCheck) error { return nil }
	}
	in := bufio.NewReader(cfg.In)
	return func(_ context.Context, checks []openaicua.SafetyCheck) error {
		for _, c := range checks {
			fmt.Fprintf(cfg.Prompt, "safety check %s (%s): %s\n", c.ID, c.Code, c.Message)
		}
		fmt.Fprint(cfg.Prompt, "go ahead? [y/N] ")
		line, _ := in.ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a == "y" || a == "yes" {
			return nil
		}
		return errors.New("refused on the terminal")
	}
}

// run does the task: it opens the desktop, loops over the model's turns
// and closes the desktop.
func run(ctx context.Context, cfg config) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	sbx, closeDesktop, err := openDesktop(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeDesktop()) }()

	tool, err := openaicua.New(ctx, sbx, openaicua.Config{Display: cfg.Display, Approve: approver(cfg)})
	if err != nil {
		return err
	}
	cfg.Log.Info("desktop", "screen", fmt.Sprint(tool.Screen()), "display", fmt.Sprint(tool.Display()))
	c := openai.NewClient() // OPENAI_API_KEY, OPENAI_BASE_URL
	params := responses.ResponseNewParams{
		Model: shared.ResponsesModel(cfg.Model),
		Tools: []responses.ToolUnionParam{openaisdk.Tool()},
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(cfg.Task)},
	}
	if cfg.Preview {
		params.Tools = []responses.ToolUnionParam{openaisdk.PreviewTool(tool)}
		params.Truncation = responses.ResponseNewParamsTruncationAuto
	}
	for turn := 1; turn <= cfg.MaxTurns; turn++ {
		resp, err := c.Responses.New(ctx, params)
		if err != nil {
			return fmt.Errorf("turn %d: %w", turn, err)
		}
		if text := resp.OutputText(); text != "" {
			cfg.Log.Info("model", "turn", turn, "text", text)
		}
		calls, err := openaisdk.Calls(resp)
		if err != nil {
			return err
		}
		if len(calls) == 0 {
			cfg.Log.Info("done", "turn", turn)
			return nil
		}
		var items responses.ResponseInputParam
		for _, call := range calls {
			cfg.Log.Info("computer_call", "turn", turn, "call_id", call.CallID, "actions", len(call.Actions))
			out, err := tool.Run(ctx, call)
			if errors.Is(err, desktop.ErrInvalid) {
				// The model asked for something the desktop cannot do: show
				// it the screen as it is and let it try again.
				cfg.Log.Warn("computer_call not run", "call_id", call.CallID, "err", err)
				out, err = tool.Screenshot(ctx, call.CallID)
			}
			if err != nil {
				return fmt.Errorf("turn %d: %w", turn, err)
			}
			items = append(items, openaisdk.OutputParam(out))
		}
		params.PreviousResponseID = openai.String(resp.ID)
		params.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: items}
	}
	return fmt.Errorf("the task is not done after %d turns", cfg.MaxTurns)
}

// openDesktop connects to the agent (agent mode) or creates or connects to
// a sandbox (server mode). The returned function closes it, killing a
// sandbox it created unless cfg.Keep is set.
func openDesktop(ctx context.Context, cfg config) (*client.Sandbox, func() error, error) {
	if cfg.AgentURL != "" {
		sbx, err := client.ConnectAgent(cfg.AgentURL, client.WithToken(cfg.Token))
		if err != nil {
			return nil, nil, err
		}
		if _, err := sbx.WaitReady(ctx, time.Minute); err != nil {
			sbx.Close()
			return nil, nil, err
		}
		return sbx, sbx.Close, nil
	}
	srv, err := client.New(cfg.ServerURL, cfg.APIKey)
	if err != nil {
		return nil, nil, err
	}
	var sbx *client.Sandbox
	if cfg.SandboxID != "" {
		sbx, err = srv.Connect(ctx, cfg.SandboxID)
	} else {
		sbx, err = srv.Create(ctx, client.CreateOptions{Timeout: 30 * time.Minute})
	}
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	cfg.Log.Info("sandbox", "id", sbx.ID())
	return sbx, func() error {
		var err error
		if cfg.SandboxID == "" && !cfg.Keep {
			kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err = sbx.Kill(kctx)
			cancel()
		}
		sbx.Close()
		srv.Close()
		return err
	}, nil
}
