// Package openaisdk connects openaicua to the official Go SDK,
// github.com/openai/openai-go: the tool as a tool param, computer_call items
// of a Response in, computer_call_output input items out. It is a package
// of its own so that openaicua does not pull in the SDK.
//
//	tool, _ := openaicua.New(ctx, sbx, openaicua.Config{Approve: approve})
//	params.Tools = []responses.ToolUnionParam{openaisdk.Tool()}
//	resp, _ := c.Responses.New(ctx, params)
//	items, err := openaisdk.Run(ctx, tool, resp)
//	params.PreviousResponseID = openai.String(resp.ID)
//	params.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: items}
package openaisdk

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/cubicle-dev/cubicle/openaicua"
)

// Tool returns the computer tool ({"type": "computer"}) as a tool param.
func Tool() responses.ToolUnionParam {
	p := responses.NewComputerToolParam()
	return responses.ToolUnionParam{OfComputer: &p}
}

// PreviewTool returns the computer_use_preview tool with the display size
// of t.
func PreviewTool(t *openaicua.Tool) responses.ToolUnionParam {
	d := t.PreviewDefinition()
	return responses.ToolUnionParam{OfComputerUsePreview: &responses.ComputerUsePreviewToolParam{
		DisplayWidth: int64(d.DisplayWidth), DisplayHeight: int64(d.DisplayHeight),
		Environment: responses.ComputerUsePreviewToolEnvironment(d.Environment),
	}}
}

// Call converts the SDK's computer_call item.
func Call(c responses.ResponseComputerToolCall) (openaicua.Call, error) {
	var out openaicua.Call
	if err := json.Unmarshal([]byte(c.RawJSON()), &out); err != nil {
		return openaicua.Call{}, fmt.Errorf("openaisdk: computer_call %s: %w", c.CallID, err)
	}
	return out, nil
}

// Calls returns the computer_call items of a response, in order.
func Calls(r *responses.Response) ([]openaicua.Call, error) {
	var calls []openaicua.Call
	for _, item := range r.Output {
		if item.Type != "computer_call" {
			continue
		}
		c, err := Call(item.AsComputerCall())
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
	}
	return calls, nil
}

// OutputParam converts an output into the SDK's input item.
func OutputParam(o *openaicua.Output) responses.ResponseInputItemUnionParam {
	item := responses.ResponseInputItemParamOfComputerCallOutput(o.CallID,
		responses.ResponseComputerToolCallOutputScreenshotParam{ImageURL: openai.String(o.Output.ImageURL)})
	for _, s := range o.AcknowledgedSafetyChecks {
		ack := responses.ResponseInputItemComputerCallOutputAcknowledgedSafetyCheckParam{ID: s.ID}
		if s.Code != "" {
			ack.Code = openai.String(s.Code)
		}
		if s.Message != "" {
			ack.Message = openai.String(s.Message)
		}
		item.OfComputerCallOutput.AcknowledgedSafetyChecks = append(item.OfComputerCallOutput.AcknowledgedSafetyChecks, ack)
	}
	return item
}

// Run executes the computer_call items of a response (see
// openaicua.Tool.Run) and returns their outputs as input items for the next
// request; none when the response has no computer_call.
func Run(ctx context.Context, t *openaicua.Tool, r *responses.Response) (responses.ResponseInputParam, error) {
	calls, err := Calls(r)
	if err != nil {
		return nil, err
	}
	var items responses.ResponseInputParam
	for _, c := range calls {
		o, err := t.Run(ctx, c)
		if err != nil {
			return nil, err
		}
		items = append(items, OutputParam(o))
	}
	return items, nil
}
