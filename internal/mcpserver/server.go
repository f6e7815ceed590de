// Package mcpserver is an MCP (Model Context Protocol) server that lets any
// MCP client drive Cubicle desktops: create and connect sandboxes, see the
// screen, use the mouse and keyboard, run commands and move files. It talks
// to a Cubicle server through the public Go client.
//
// Every session has a current sandbox, the last one it created or
// connected, so that the desktop tools need no id; each tool also takes an
// explicit sandbox_id.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Config configures a Server.
type Config struct {
	// Server is the Cubicle server the tools act on.
	Server *client.Server
	// Logger gets the server's own log lines; nil discards them. Over
	// stdio it must not write to stdout, which carries the protocol.
	Logger *slog.Logger
	// Version is the version the server reports to clients; default "dev".
	Version string
}

// Validate checks c.
func (c *Config) Validate() error {
	if c.Server == nil {
		return errors.New("mcpserver: config: Server is nil")
	}
	return nil
}

// Server is an MCP server whose tools drive the sandboxes of one Cubicle
// server. It serves any number of sessions at once.
type Server struct {
	srv *client.Server
	log *slog.Logger
	mcp *mcp.Server

	mu sync.Mutex
	// handles are the sandboxes reached so far, by id; they hold each
	// sandbox's access token.
	handles map[string]*client.Sandbox
	// current is the current sandbox of each session, by session id
	// ("" for the one session of a stdio server).
	current map[string]string
	// sharedEmpty says that the session id "" is one real session (stdio)
	// rather than requests without a session (HTTP without
	// Mcp-Session-Id), which must not share a current sandbox.
	sharedEmpty bool
}

// New returns a Server with every tool registered.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	version := cfg.Version
	if version == "" {
		version = "dev"
	}
	s := &Server{
		srv:     cfg.Server,
		log:     log,
		handles: map[string]*client.Sandbox{},
		current: map[string]string{},
	}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "cubicle", Title: "Cubicle desktops", Version: version},
		&mcp.ServerOptions{Instructions: instructions, Logger: log})
	s.registerSandboxTools()
	s.registerScreenTools()
	s.registerInputTools()
	s.registerSystemTools()
	s.registerLiveViewTool()
	return s, nil
}

// instructions tell a model how the tools fit together.
const instructions = `These tools drive Linux desktops (XFCE, Firefox, a terminal) in Cubicle sandboxes.
Start with create_sandbox (or connect_sandbox for an existing one): it becomes the current sandbox, and
every other tool acts on it unless given sandbox_id. Look with screenshot; act with click, type, key,
scroll, drag and move_mouse, using pixel coordinates of the full-size screenshot. Pass screenshot: true to
an action to get the screen back once it has stopped changing. run_command runs shell commands;
read_file and write_file move files; open and launch_app start applications. get_live_view_url gives a
link for a person to watch the desktop in a browser. kill_sandbox ends a sandbox.`

// MCP returns the underlying MCP server, for transports of the caller's own.
func (s *Server) MCP() *mcp.Server { return s.mcp }

// Run serves one session over stdin and stdout until the client goes away
// or ctx ends.
func (s *Server) Run(ctx context.Context) error {
	return s.RunTransport(ctx, &mcp.StdioTransport{})
}

// RunTransport serves one session over t until it ends or ctx ends; the
// session's current sandbox is kept under the transport's session id.
func (s *Server) RunTransport(ctx context.Context, t mcp.Transport) error {
	s.mu.Lock()
	s.sharedEmpty = true
	s.mu.Unlock()
	err := s.mcp.Run(ctx, t)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// errNoCurrent is the error of a tool that needs a sandbox when the session
// has none.
func errNoCurrent() error {
	return &desktop.Error{Code: desktop.CodeInvalid, Field: "sandbox_id", Index: -1,
		Message: "no current sandbox: call create_sandbox or connect_sandbox first, or pass sandbox_id"}
}

// sessionKey is the key of the session of req in s.current, and whether
// a current sandbox may be kept for it.
func (s *Server) sessionKey(req *mcp.CallToolRequest) (string, bool) {
	id := ""
	if req != nil && req.Session != nil {
		id = req.Session.ID()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return id, id != "" || s.sharedEmpty
}

// setCurrent makes id the current sandbox of the session of req. It also
// forgets the current sandboxes of sessions that ended.
func (s *Server) setCurrent(req *mcp.CallToolRequest, id string) bool {
	key, ok := s.sessionKey(req)
	if !ok {
		return false
	}
	live := map[string]bool{}
	for ss := range s.mcp.Sessions() {
		live[ss.ID()] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.current {
		if k != "" && !live[k] {
			delete(s.current, k)
		}
	}
	s.current[key] = id
	return true
}

// currentID is the current sandbox of the session of req, or "".
func (s *Server) currentID(req *mcp.CallToolRequest) string {
	key, ok := s.sessionKey(req)
	if !ok {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current[key]
}

// forget drops the handle of a sandbox that is gone, and makes it nobody's
// current sandbox.
func (s *Server) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.handles, id)
	for k, v := range s.current {
		if v == id {
			delete(s.current, k)
		}
	}
}

// remember keeps the handle of a sandbox.
func (s *Server) remember(sb *client.Sandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handles[sb.ID()] = sb
}

// sandbox returns the sandbox a tool acts on: id, or the session's current
// one when id is "". A sandbox not reached before is connected.
func (s *Server) sandbox(ctx context.Context, req *mcp.CallToolRequest, id string) (*client.Sandbox, error) {
	if id == "" {
		id = s.currentID(req)
		if id == "" {
			return nil, errNoCurrent()
		}
	}
	s.mu.Lock()
	sb := s.handles[id]
	s.mu.Unlock()
	if sb != nil {
		return sb, nil
	}
	sb, err := s.srv.Connect(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("connect to sandbox %s: %w", id, err)
	}
	s.remember(sb)
	return sb, nil
}
