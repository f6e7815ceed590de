package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Limits on a tool call when the tool sets none of its own.
const (
	defaultCallLimit = 2 * time.Minute
	createCallLimit  = 10 * time.Minute
)

// handlerFunc is a tool's handler: typed input, typed structured output.
type handlerFunc[In, Out any] func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error)

// addTool registers a tool whose input schema is inferred from In (the
// descriptions from the jsonschema tags) and refined by refine, and whose
// output schema is inferred from Out. The arguments are checked against
// the input schema here, so that every mistake gets a message that names
// the argument and what it takes. Every call runs under limit; errors and
// panics become tool errors with a stable code.
func addTool[In, Out any](s *Server, t *mcp.Tool, limit time.Duration, refine func(props map[string]*jsonschema.Schema), h handlerFunc[In, Out]) {
	schema := inputSchema[In](refine)
	t.InputSchema = schema
	out, err := jsonschema.For[Out](&jsonschema.ForOptions{})
	if err != nil {
		panic(fmt.Sprintf("mcpserver: tool %s: output schema: %v", t.Name, err))
	}
	t.OutputSchema = out
	s.mcp.AddTool(t, func(ctx context.Context, req *mcp.CallToolRequest) (res *mcp.CallToolResult, _ error) {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("tool panicked", "tool", t.Name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				res = errorResult(t.Name, desktop.Errorf(desktop.CodeInternal, "the tool failed unexpectedly; the server logged why"))
			}
		}()
		var in In
		if err := decodeArgs(req.Params.Arguments, schema, &in); err != nil {
			return errorResult(t.Name, err), nil
		}
		ctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		start := time.Now()
		res, out, err := h(ctx, req, in)
		if err != nil {
			s.log.Debug("tool failed", "tool", t.Name, "code", desktop.CodeOf(err), "duration_ms", time.Since(start).Milliseconds())
			return errorResult(t.Name, err), nil
		}
		s.log.Debug("tool done", "tool", t.Name, "duration_ms", time.Since(start).Milliseconds())
		res.StructuredContent = out
		return res, nil
	})
}

// errorResult is err as a tool error a model reads: "tool: code: message".
func errorResult(tool string, err error) *mcp.CallToolResult {
	code := desktop.CodeOf(err)
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		msg = "the call took too long and was stopped: " + msg
	case code == desktop.CodeNotReady:
		msg += " (the desktop is still starting; try again in a few seconds)"
	case code == desktop.CodeUnauthorized:
		msg += " (check the API key, CUBICLE_API_KEY)"
	}
	var res mcp.CallToolResult
	res.SetError(fmt.Errorf("%s: %s: %s", tool, code, msg))
	return &res
}

// invalid is an invalid-argument error about field.
func invalid(field, format string, args ...any) error {
	e := desktop.Errorf(desktop.CodeInvalid, format, args...)
	e.Field = field
	return e
}

// textResult is a result whose content is out as indented JSON, followed by
// extra content (an image).
func textResult(out any, extra ...mcp.Content) (*mcp.CallToolResult, error) {
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, desktop.Errorf(desktop.CodeInternal, "encode the result: %v", err)
	}
	content := []mcp.Content{&mcp.TextContent{Text: string(b)}}
	return &mcp.CallToolResult{Content: append(content, extra...)}, nil
}

// pngContent is a PNG image as tool content.
func pngContent(data []byte) mcp.Content {
	return &mcp.ImageContent{Data: data, MIMEType: "image/png"}
}
