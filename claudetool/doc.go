// Package claudetool runs Anthropic's computer-use tool on a Cubicle
// desktop: it turns the tool_use blocks of Claude's answer (tool versions
// computer_20241022, computer_20250124 and computer_20251124) into desktop
// actions and their results into tool_result blocks.
//
//	sbx, _ := client.ConnectAgent(agentURL, client.WithToken(token))
//	tool, err := claudetool.New(ctx, sbx, claudetool.Config{EnableZoom: true})
//	// send tool.Definition() in the request's tools, with the
//	// anthropic-beta header tool.Version().Beta(); then, per answer:
//	results, err := tool.Run(ctx, toolUses)
//
// The calls of one turn become as few batch round trips as possible: the
// desktop runs their actions in order, waits for the screen to stop
// changing (no fixed sleeps) and takes the one screenshot a result needs.
// The model is shown a display of a standard size (see Config.Display);
// screenshots are scaled to it and coordinates scaled back to the screen.
// Bad input (an unknown action or key, a missing or mistyped field, a point
// outside the display) gives an is_error result whose text says what to
// change, never a panic.
//
// Package claudetool/anthropicsdk converts to and from the types of the
// official Go SDK.
package claudetool
