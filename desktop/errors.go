package desktop

import (
	"context"
	"errors"
	"fmt"
)

// Error classes. Every *Error belongs to exactly one class, so callers can
// test with errors.Is(err, desktop.ErrInvalid) whatever the specific code.
var (
	ErrInvalid      = errors.New("invalid argument")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrUnavailable  = errors.New("unavailable")
	ErrTimeout      = errors.New("deadline exceeded")
	ErrUnauthorized = errors.New("unauthorized")
	ErrTooLarge     = errors.New("too large")
	ErrInternal     = errors.New("internal error")
)

// Stable error codes. They are part of the wire contract: add, never rename.
const (
	CodeBadRequest    = "bad_request" // the body is not valid JSON or has unknown fields
	CodeInvalid       = "invalid_argument"
	CodeUnknownAction = "unknown_action"
	CodeOutOfBounds   = "out_of_bounds"
	CodeUnknownKey    = "unknown_key"
	CodeUnknownButton = "unknown_button"
	CodeTextTooLong   = "text_too_long"
	CodeTooLarge      = "too_large" // the request body is over the limit
	CodeNotFound      = "not_found"
	CodeConflict      = "conflict"
	CodeNotReady      = "not_ready" // the desktop is still starting
	CodeUnavailable   = "unavailable"
	CodeTimeout       = "timeout"
	CodeUnauthorized  = "unauthorized"
	CodeInternal      = "internal"
)

var codeClass = map[string]error{
	CodeBadRequest:    ErrInvalid,
	CodeInvalid:       ErrInvalid,
	CodeUnknownAction: ErrInvalid,
	CodeOutOfBounds:   ErrInvalid,
	CodeUnknownKey:    ErrInvalid,
	CodeUnknownButton: ErrInvalid,
	CodeTextTooLong:   ErrInvalid,
	CodeTooLarge:      ErrTooLarge,
	CodeNotFound:      ErrNotFound,
	CodeConflict:      ErrConflict,
	CodeNotReady:      ErrUnavailable,
	CodeUnavailable:   ErrUnavailable,
	CodeTimeout:       ErrTimeout,
	CodeUnauthorized:  ErrUnauthorized,
	CodeInternal:      ErrInternal,
}

// Error is the error every desktop operation reports, on both sides of the
// wire. Code is stable and machine-readable; Message says what is wrong in
// words a person can act on. Index is the position of the failing action in
// a batch, or -1.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Index   int    `json:"index"`
	// Field names the part of the action that was wrong, when there is one.
	Field string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("action %d: %s", e.Index, e.Message)
	}
	return e.Message
}

// Is reports whether target is the class of e's code.
func (e *Error) Is(target error) bool {
	class, ok := codeClass[e.Code]
	if !ok {
		class = ErrInternal
	}
	return class == target
}

// Errorf returns an *Error with the given code and no batch index.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Index: -1}
}

// Class returns the class sentinel of err, or ErrInternal when err carries no
// class.
func Class(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return ErrTimeout
	}
	for _, c := range []error{ErrInvalid, ErrNotFound, ErrConflict, ErrUnavailable, ErrTimeout, ErrUnauthorized, ErrTooLarge} {
		if errors.Is(err, c) {
			return c
		}
	}
	return ErrInternal
}

// CodeOf returns the stable code of err: the code of the *Error it wraps, or
// the generic code of its class.
func CodeOf(err error) string {
	var de *Error
	if errors.As(err, &de) {
		return de.Code
	}
	switch Class(err) {
	case ErrInvalid:
		return CodeInvalid
	case ErrNotFound:
		return CodeNotFound
	case ErrConflict:
		return CodeConflict
	case ErrUnavailable:
		return CodeUnavailable
	case ErrTimeout:
		return CodeTimeout
	case ErrUnauthorized:
		return CodeUnauthorized
	case ErrTooLarge:
		return CodeTooLarge
	}
	return CodeInternal
}

// HTTPStatus is the HTTP status that stands for err's class.
func HTTPStatus(err error) int {
	switch Class(err) {
	case ErrInvalid:
		return 400
	case ErrNotFound:
		return 404
	case ErrConflict:
		return 409
	case ErrUnavailable:
		return 503
	case ErrTimeout:
		return 504
	case ErrUnauthorized:
		return 401
	case ErrTooLarge:
		return 413
	}
	return 500
}
