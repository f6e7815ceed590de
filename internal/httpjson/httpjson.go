// Package httpjson is the JSON edge of Cubicle's HTTP APIs (the server's
// /v1 and the agent's): strict request decoding, and errors written in one
// place as {"error": {code, message, index, field}} with the status of
// their class.
package httpjson

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// WriteJSON writes v as the JSON body of a status answer.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// WriteError writes err as {"error": {...}} with the status of its class.
// An internal error gets an id that ties the answer to the log line with
// its cause; its message stays in the log.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := desktop.HTTPStatus(err)
	var de *desktop.Error
	if !errors.As(err, &de) {
		de = &desktop.Error{Code: desktop.CodeOf(err), Message: err.Error(), Index: -1}
	}
	if de.Code == desktop.CodeInternal || status == http.StatusInternalServerError {
		id := errorID()
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error_id", id, "error", err)
		de = &desktop.Error{Code: desktop.CodeInternal, Index: -1,
			Message: fmt.Sprintf("internal error (error id %s); the log has the details", id)}
		status = http.StatusInternalServerError
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cubicle"`)
	}
	WriteJSON(w, status, map[string]*desktop.Error{"error": de})
}

func errorID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Decode reads a JSON body strictly into v: no unknown fields, nothing
// after it, at most maxBody bytes. With optional, an empty body leaves v
// as it is. Its errors are *desktop.Error with codes bad_request or
// too_large and a message that says what to fix.
func Decode(w http.ResponseWriter, r *http.Request, v any, maxBody int64, optional bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if optional && errors.Is(err, io.EOF) {
			return nil
		}
		return decodeError(err, maxBody)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return decodeError(err, maxBody)
		}
		return desktop.Errorf(desktop.CodeBadRequest, "request body has data after the JSON value; send exactly one")
	}
	return nil
}

func decodeError(err error, maxBody int64) error {
	var (
		tooBig  *http.MaxBytesError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return desktop.Errorf(desktop.CodeTooLarge, "request body is over %d bytes; split the work into several requests", maxBody)
	case errors.Is(err, io.EOF):
		return desktop.Errorf(desktop.CodeBadRequest, "request body is empty; send a JSON object")
	case errors.As(err, &syntax):
		return desktop.Errorf(desktop.CodeBadRequest, "request body is not valid JSON: %v (at byte %d)", err, syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return desktop.Errorf(desktop.CodeBadRequest, "request body is not valid JSON: it ends in the middle of a value")
	case errors.As(err, &typeErr):
		return &desktop.Error{Code: desktop.CodeBadRequest, Index: -1, Field: typeErr.Field,
			Message: fmt.Sprintf("field %q must be %s, not a JSON %s", typeErr.Field, jsonType(typeErr.Type.String()), typeErr.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &desktop.Error{Code: desktop.CodeBadRequest, Index: -1, Field: name,
			Message: fmt.Sprintf("unknown field %q; the API's OpenAPI document lists the fields", name)}
	}
	return desktop.Errorf(desktop.CodeBadRequest, "bad request body: %v", err)
}

// jsonType names a Go type the way a JSON user thinks of it.
func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "map["):
		return "an object of strings"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "an object"
}
