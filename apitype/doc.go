// Package apitype holds the JSON shapes of Cubicle's native API: the
// control plane of `cubicle serve` (/v1/sandboxes...), the stream URLs of
// the live view, and the commands and files API of the agent inside each
// sandbox (/v1/commands, /v1/files).
//
// The server encodes and decodes these types, and the Go SDK (package
// client) sends and reads the same ones, so the two cannot drift apart. A
// request field that the server defaults is omitted when it is zero (or
// nil, where zero means something of its own), so a client may leave it
// out and the server applies its default.
//
// The action vocabulary of the desktop and the error classes (*desktop.Error
// and its codes) are in package desktop, which every error answer uses.
//
// The package imports only the standard library, so that users of the SDK
// do not pull in the server.
package apitype
