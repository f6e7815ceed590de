package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/internal/mcpserver"
)

const mcpUsage = `usage: cubicle mcp [flags]

Runs an MCP (Model Context Protocol) server whose tools drive Cubicle
desktops: create_sandbox, screenshot, click, type, key, run_command, ...
By default it speaks MCP over stdin and stdout, the way MCP clients such as
Claude Desktop start it; with --http it serves the streamable HTTP
transport at http://ADDR/mcp instead.

It talks to the Cubicle server at $CUBICLE_URL with the API key in
$CUBICLE_API_KEY (or the flags below).

Flags:
`

// mcpPath is where the HTTP transport is served.
const mcpPath = "/mcp"

func runMCP(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, mcpUsage); fs.PrintDefaults() }
	var (
		serverURL = fs.String("server", envOr("CUBICLE_URL", client.DefaultServerURL), "`URL` of the Cubicle server (default $CUBICLE_URL)")
		apiKey    = fs.String("api-key", "", "API `key` of the Cubicle server (default $CUBICLE_API_KEY; prefer the variable: flags show in ps)")
		httpAddr  = fs.String("http", "", "serve the streamable HTTP transport on `ADDR` (host:port) instead of stdio")
		httpToken = fs.String("http-token", "", "require Authorization: Bearer `TOKEN` on HTTP requests (default $CUBICLE_MCP_TOKEN); needed unless ADDR is loopback")
		logLevel  = fs.String("log-level", "warn", "debug, info, warn or error (the log goes to stderr)")
	)
	if code, ok := parseOnlyFlags(fs, args, stderr); !ok {
		return code
	}
	if *apiKey == "" {
		*apiKey = os.Getenv("CUBICLE_API_KEY")
	}
	if *httpToken == "" {
		*httpToken = os.Getenv("CUBICLE_MCP_TOKEN")
	}
	log, err := newLogger(stderr, *logLevel, "text")
	if err != nil {
		fmt.Fprintf(stderr, "cubicle mcp: %v\n", err)
		return 2
	}
	srv, err := client.New(*serverURL, *apiKey, client.WithUserAgent("cubicle-mcp/"+version))
	if err != nil {
		fmt.Fprintf(stderr, "cubicle mcp: %v\n", err)
		return 2
	}
	defer srv.Close()
	s, err := mcpserver.New(mcpserver.Config{Server: srv, Logger: log, Version: version})
	if err != nil {
		fmt.Fprintf(stderr, "cubicle mcp: %v\n", err)
		return 1
	}
	if *httpAddr == "" {
		if err := s.Run(ctx); err != nil {
			fmt.Fprintf(stderr, "cubicle mcp: %v\n", err)
			return 1
		}
		return 0
	}
	if *httpToken == "" && !loopback(*httpAddr) {
		fmt.Fprintf(stderr, "cubicle mcp: --http %s is reachable from other machines: set --http-token or $CUBICLE_MCP_TOKEN, or listen on 127.0.0.1\n", *httpAddr)
		return 2
	}
	if err := serveMCPHTTP(ctx, s, *httpAddr, *httpToken, stderr); err != nil {
		fmt.Fprintf(stderr, "cubicle mcp: %v\n", err)
		return 1
	}
	return 0
}

// loopback reports whether addr listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveMCPHTTP serves the MCP streamable HTTP transport on addr until ctx
// ends, then shuts down with a deadline.
func serveMCPHTTP(ctx context.Context, s *mcpserver.Server, addr, token string, stderr io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(mcpPath, s.Handler(token))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	fmt.Fprintf(stderr, "cubicle mcp: serving MCP on http://%s%s\n", ln.Addr(), mcpPath)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Open event streams do not end by themselves.
		err = hs.Close()
	}
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
