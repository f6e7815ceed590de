// Package openaicua runs OpenAI's computer-use tool (the Responses API's
// computer_call items) on a Cubicle desktop: the actions of a call (click,
// double_click, drag, keypress, move, screenshot, scroll, type, wait),
// whether one action or a list, become one batch round trip, and the answer
// is the computer_call_output item with a screenshot of the screen once it
// has stopped changing.
//
//	tool, err := openaicua.New(ctx, sbx, openaicua.Config{Approve: askTheUser})
//	out, err := tool.Run(ctx, call) // out marshals to computer_call_output
//
// Pending safety checks go to Config.Approve before anything runs; they are
// acknowledged in the output only when it approves. The model is shown a
// display of a standard size (see Config.Display); screenshots are scaled to
// it and coordinates scaled back to the screen. OpenAI's key names ("CTRL",
// "ENTER", "ARROWLEFT") map to X keys.
//
// Package openaicua/openaisdk converts to and from the types of the
// official Go SDK.
package openaicua
