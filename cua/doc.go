// Package cua is the toolkit behind the computer-use model adapters
// (claudetool for Anthropic's computer tool, openaicua for OpenAI's), and
// the place to start an adapter for another model's tool format.
//
// It holds what every adapter needs between a model and a desktop:
//   - display profiles and scaling: a model is shown a screen of a size it
//     was trained on (XGA, WXGA, FWXGA, 1080p), and the points it gives are
//     mapped back to the real screen (ChooseDisplay, Scaler);
//   - reading a tool call's JSON arguments field by field, so that every
//     missing, extra or mistyped field gets a message naming it (Args);
//   - key names as models write them: xdotool syntax and OpenAI's names,
//     resolved to X keysyms (XdotoolKeys, OpenAIKeys, Key);
//   - running a turn's translated calls as few desktop batches as possible,
//     with one screenshot taken after the screen settles (Run).
//
// It depends only on the standard library and package desktop; a
// *client.Sandbox is a Batcher.
package cua
