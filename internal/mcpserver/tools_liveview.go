package mcpserver

import (
	"context"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/client"
)

type liveViewIn struct {
	target
	ViewOnly bool   `json:"view_only,omitempty" jsonschema:"make a URL that only shows the desktop and ignores the viewer's mouse and keyboard"`
	TTLS     int    `json:"ttl_s,omitempty" jsonschema:"seconds the URL works; default 3600"`
	Window   uint32 `json:"window,omitempty" jsonschema:"show only this window (an id from list_windows)"`
}

type liveViewOut struct {
	URL       string    `json:"url" jsonschema:"open it in a web browser to watch (and, unless view_only, use) the desktop"`
	ViewOnly  bool      `json:"view_only"`
	ExpiresAt time.Time `json:"expires_at"`
	TokenID   string    `json:"token_id"`
}

// maxLiveViewS bounds the lifetime of a live-view URL.
const maxLiveViewS = 7 * 24 * 3600

func (s *Server) registerLiveViewTool() {
	addTool(s, &mcp.Tool{
		Name:  "get_live_view_url",
		Title: "Live view URL",
		Description: "Return a URL that shows the sandbox's desktop live in a web browser, for a person to watch " +
			"or take over. Anyone holding the URL can open it until it expires: share it only with the user.",
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: new(false)},
	}, defaultCallLimit, func(p map[string]*jsonschema.Schema) {
		between(p["ttl_s"], 1, maxLiveViewS)
	}, s.liveViewURL)
}

func (s *Server) liveViewURL(ctx context.Context, req *mcp.CallToolRequest, in liveViewIn) (*mcp.CallToolResult, liveViewOut, error) {
	sb, err := s.sandbox(ctx, req, in.SandboxID)
	if err != nil {
		return nil, liveViewOut{}, err
	}
	u, err := sb.StreamURL(ctx, client.StreamURLOptions{ViewOnly: in.ViewOnly, TTL: time.Duration(in.TTLS) * time.Second, Window: in.Window})
	if err != nil {
		return nil, liveViewOut{}, err
	}
	out := liveViewOut{URL: u.URL, ViewOnly: u.ViewOnly, ExpiresAt: u.ExpiresAt, TokenID: u.TokenID}
	res, err := textResult(out)
	return res, out, err
}
