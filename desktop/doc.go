// Package desktop is Cubicle's action vocabulary: the mouse, keyboard, window
// and screenshot operations an agent can ask of a desktop, their JSON form,
// their validation, key names, and the error classes every layer shares.
//
// It uses the standard library only, so the SDK, the agent, the server and the
// model adapters can all import it.
package desktop

//go:generate go run ./internal/keysymgen -o keysym_table.go
