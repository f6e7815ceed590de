// Command claude-agent lets Claude drive a Cubicle desktop with Anthropic's
// computer-use tool: it creates a sandbox (or connects to one, or straight
// to an agent), sends the task with the computer tool to the Messages API,
// runs the tool calls of each answer on the desktop and sends the results
// back until Claude ends its turn.
//
//	ANTHROPIC_API_KEY=... CUBICLE_API_KEY=... go run ./examples/claude-agent "open firefox and search for cubicle"
//
// ANTHROPIC_BASE_URL points it at another Messages API endpoint.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/cubicle-dev/cubicle/claudetool"
	"github.com/cubicle-dev/cubicle/claudetool/anthropicsdk"
	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
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

	Model     string
	Version   claudetool.Version
	Display   desktop.Size // zero: chosen for the screen
	MaxTurns  int
	MaxTokens int
	Log       *slog.Logger
}

func (c *config) validate() error {
	switch {
	case strings.TrimSpace(c.Task) == "":
		return errors.New("no task: pass what Claude should do as the argument")
	case c.AgentURL == "" && c.APIKey == "":
		return errors.New("no Cubicle API key: set CUBICLE_API_KEY (or use --agent URL --token T)")
	case c.MaxTurns < 1 || c.MaxTokens < 1:
		return errors.New("--max-turns and --max-tokens must be positive")
	}
	return nil
}

func main() {
	cfg := config{Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	var display, version string
	flag.StringVar(&cfg.ServerURL, "server", envOr("CUBICLE_URL", client.DefaultServerURL), "Cubicle server URL")
	flag.StringVar(&cfg.SandboxID, "sandbox", "", "connect to this sandbox instead of creating one")
	flag.BoolVar(&cfg.Keep, "keep", false, "leave the sandbox running at the end")
	flag.StringVar(&cfg.AgentURL, "agent", "", "talk straight to the agent at this URL instead of a server")
	flag.StringVar(&cfg.Token, "token", os.Getenv("CUBICLE_AGENT_TOKEN"), "access token of the agent (with --agent)")
	flag.StringVar(&cfg.Model, "model", string(anthropic.ModelClaudeSonnet4_6), "Claude model")
	flag.StringVar(&version, "tool-version", string(claudetool.Computer20251124), "computer tool version")
	flag.StringVar(&display, "display", "", "display size shown to the model: XGA, WXGA, FWXGA, 1080p or WxH (default: chosen for the screen)")
	flag.IntVar(&cfg.MaxTurns, "max-turns", 50, "most model turns")
	flag.IntVar(&cfg.MaxTokens, "max-tokens", 4096, "max_tokens of each request")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: claude-agent [flags] TASK\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	cfg.Task = strings.Join(flag.Args(), " ")
	cfg.APIKey = os.Getenv("CUBICLE_API_KEY")
	cfg.Version = claudetool.Version(version)
	if display != "" {
		d, err := claudetool.ParseDisplay(display)
		if err != nil {
			fmt.Fprintln(os.Stderr, "claude-agent:", err)
			os.Exit(2)
		}
		cfg.Display = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "claude-agent:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
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

	tool, err := claudetool.New(ctx, sbx, claudetool.Config{
		Version: cfg.Version, Display: cfg.Display, EnableZoom: cfg.Version == claudetool.Computer20251124,
	})
	if err != nil {
		return err
	}
	cfg.Log.Info("desktop", "screen", fmt.Sprint(tool.Screen()), "display", fmt.Sprint(tool.Display()))
	c := anthropic.NewClient() // ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL
	params := anthropic.BetaMessageNewParams{
		Model:     anthropic.Model(cfg.Model),
		MaxTokens: int64(cfg.MaxTokens),
		Tools:     []anthropic.BetaToolUnionParam{anthropicsdk.Tool(tool)},
		Betas:     []anthropic.AnthropicBeta{anthropic.AnthropicBeta(tool.Version().Beta())},
		Messages:  []anthropic.BetaMessageParam{anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock(cfg.Task))},
	}
	for turn := 1; turn <= cfg.MaxTurns; turn++ {
		msg, err := c.Beta.Messages.New(ctx, params)
		if err != nil {
			return fmt.Errorf("turn %d: %w", turn, err)
		}
		for _, b := range msg.Content {
			switch b.Type {
			case "text":
				cfg.Log.Info("claude", "turn", turn, "text", b.Text)
			case "tool_use":
				cfg.Log.Info("tool_use", "turn", turn, "id", b.ID, "input", b.JSON.Input.Raw())
			}
		}
		params.Messages = append(params.Messages, msg.ToParam())
		results, err := anthropicsdk.Run(ctx, tool, msg)
		if err != nil {
			return fmt.Errorf("turn %d: %w", turn, err)
		}
		if msg.StopReason != anthropic.BetaStopReasonToolUse || len(results) == 0 {
			cfg.Log.Info("done", "turn", turn, "stop_reason", string(msg.StopReason))
			return nil
		}
		params.Messages = append(params.Messages, anthropic.NewBetaUserMessage(results...))
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
