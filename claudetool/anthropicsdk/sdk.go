// Package anthropicsdk connects claudetool to the official Go SDK,
// github.com/anthropics/anthropic-sdk-go: the tool definition as a tool
// param, tool_use blocks of a BetaMessage in, tool_result params out. It is
// a package of its own so that claudetool does not pull in the SDK.
//
//	tool, _ := claudetool.New(ctx, sbx, claudetool.Config{EnableZoom: true})
//	params.Tools = []anthropic.BetaToolUnionParam{anthropicsdk.Tool(tool)}
//	params.Betas = []anthropic.AnthropicBeta{anthropic.AnthropicBeta(tool.Version().Beta())}
//	msg, _ := c.Beta.Messages.New(ctx, params)
//	results, err := anthropicsdk.Run(ctx, tool, msg)
//	params.Messages = append(params.Messages, msg.ToParam(), anthropic.NewBetaUserMessage(results...))
package anthropicsdk

import (
	"context"
	"encoding/json"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/packages/param"

	"github.com/cubicle-dev/cubicle/claudetool"
)

// Tool returns the computer tool's definition as a tool param of the beta
// Messages API.
func Tool(t *claudetool.Tool) anthropic.BetaToolUnionParam {
	return ToolParam(t.Definition())
}

// ToolParam converts a definition into a tool param.
func ToolParam(d claudetool.Definition) anthropic.BetaToolUnionParam {
	h, w := int64(d.DisplayHeightPx), int64(d.DisplayWidthPx)
	var num param.Opt[int64]
	if d.DisplayNumber != nil {
		num = anthropic.Int(int64(*d.DisplayNumber))
	}
	switch d.Type {
	case claudetool.Computer20241022:
		return anthropic.BetaToolUnionParam{OfComputerUseTool20241022: &anthropic.BetaToolComputerUse20241022Param{
			DisplayHeightPx: h, DisplayWidthPx: w, DisplayNumber: num}}
	case claudetool.Computer20250124:
		return anthropic.BetaToolUnionParam{OfComputerUseTool20250124: &anthropic.BetaToolComputerUse20250124Param{
			DisplayHeightPx: h, DisplayWidthPx: w, DisplayNumber: num}}
	}
	p := &anthropic.BetaToolComputerUse20251124Param{DisplayHeightPx: h, DisplayWidthPx: w, DisplayNumber: num}
	if d.EnableZoom {
		p.EnableZoom = anthropic.Bool(true)
	}
	return anthropic.BetaToolUnionParam{OfComputerUseTool20251124: p}
}

// ToolUse converts the SDK's tool_use block.
func ToolUse(b anthropic.BetaToolUseBlock) claudetool.ToolUse {
	input := json.RawMessage(b.JSON.Input.Raw())
	if !json.Valid(input) {
		input, _ = json.Marshal(b.Input)
	}
	return claudetool.ToolUse{ID: b.ID, Name: b.Name, Input: input}
}

// ToolUses returns the computer tool's tool_use blocks of a message, in
// order.
func ToolUses(m *anthropic.BetaMessage) []claudetool.ToolUse {
	var uses []claudetool.ToolUse
	for _, c := range m.Content {
		if c.Type != "tool_use" {
			continue
		}
		if u := c.AsToolUse(); u.Name == claudetool.Name {
			uses = append(uses, ToolUse(u))
		}
	}
	return uses
}

// ResultParam converts a result into the SDK's tool_result param.
func ResultParam(r claudetool.ToolResult) anthropic.BetaToolResultBlockParam {
	p := anthropic.BetaToolResultBlockParam{ToolUseID: r.ToolUseID}
	if r.IsError {
		p.IsError = anthropic.Bool(true)
	}
	for _, c := range r.Content {
		switch {
		case c.Type == "image" && c.Source != nil:
			p.Content = append(p.Content, anthropic.BetaToolResultBlockParamContentUnion{OfImage: &anthropic.BetaImageBlockParam{
				Source: anthropic.BetaImageBlockParamSourceUnion{OfBase64: &anthropic.BetaBase64ImageSourceParam{
					Data: c.Source.Data, MediaType: anthropic.BetaBase64ImageSourceMediaType(c.Source.MediaType),
				}},
			}})
		case c.Type == "text":
			p.Content = append(p.Content, anthropic.BetaToolResultBlockParamContentUnion{OfText: &anthropic.BetaTextBlockParam{Text: c.Text}})
		}
	}
	return p
}

// Results converts results into content blocks for the next user message.
func Results(rs []claudetool.ToolResult) []anthropic.BetaContentBlockParamUnion {
	out := make([]anthropic.BetaContentBlockParamUnion, len(rs))
	for i, r := range rs {
		p := ResultParam(r)
		out[i] = anthropic.BetaContentBlockParamUnion{OfToolResult: &p}
	}
	return out
}

// Run executes the computer tool's calls of a message (see
// claudetool.Tool.Run) and returns their results as content blocks for the
// next user message; none when the message has no such call.
func Run(ctx context.Context, t *claudetool.Tool, m *anthropic.BetaMessage) ([]anthropic.BetaContentBlockParamUnion, error) {
	uses := ToolUses(m)
	if len(uses) == 0 {
		return nil, nil
	}
	rs, err := t.Run(ctx, uses)
	if err != nil {
		return nil, err
	}
	return Results(rs), nil
}
