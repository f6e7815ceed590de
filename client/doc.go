// Package client is the Go SDK for Cubicle desktops: it drives one desktop
// through the HTTP API of its agent (screenshots, mouse, keyboard, windows,
// applications, the clipboard), with methods named after E2B's desktop SDK.
//
// A *Sandbox is the handle to one desktop. ConnectAgent returns one that
// talks straight to an agent by URL:
//
//	sb, err := client.ConnectAgent("http://127.0.0.1:49983", client.WithToken(token))
//	if err != nil {
//		return err
//	}
//	defer sb.Close()
//	if _, err := sb.WaitReady(ctx, time.Minute); err != nil {
//		return err
//	}
//	if err := sb.LeftClick(ctx, 100, 200); err != nil {
//		return err
//	}
//	png, err := sb.Screenshot(ctx)
//
// Every error the agent reports is a *desktop.Error with a stable code, so
// callers test its class with errors.Is (ErrInvalid, ErrNotFound,
// ErrUnavailable, ErrUnauthorized, ErrTimeout, ...) and read Code, Field and
// Index with errors.As. An agent that cannot be reached gives an error of
// class ErrUnavailable; a call that runs past its context's deadline gives
// one of class ErrTimeout.
//
// Several actions can go in one round trip with Do or DoBatch; they run in
// order on the agent, and a failed batch returns both what completed and the
// error, whose Index names the action that failed.
//
// The JSON shapes it sends and reads are those of package apitype, which
// the server uses too; SandboxInfo, Limits, Network, Metrics, CommandInfo,
// WriteInfo and StreamURL are its types under the SDK's names.
//
// The package uses the standard library and packages desktop and apitype
// only.
package client
