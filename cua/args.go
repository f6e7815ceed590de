package cua

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Args are the arguments of one model tool call: a JSON object read field
// by field, so that every missing, extra or mistyped field gets a message
// that names it.
type Args struct {
	what string // "left_click", for messages
	m    map[string]json.RawMessage
}

// ParseArgs reads a JSON object of arguments; what names the call in
// messages. A null field counts as absent.
func ParseArgs(raw []byte, what string) (*Args, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, Invalid("input", "%s input must be a JSON object, got %s", what, quote(raw))
	}
	for k, v := range m {
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			delete(m, k)
		}
	}
	return &Args{what: what, m: m}, nil
}

// quote shows the start of a JSON text in a message.
func quote(raw []byte) string {
	s := strings.Join(strings.Fields(string(raw)), " ")
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	if s == "" {
		return "nothing"
	}
	return s
}

// Named returns a with what, the name of the call in messages, changed.
func (a *Args) Named(what string) *Args {
	return &Args{what: what, m: a.m}
}

// Has reports whether field is present.
func (a *Args) Has(field string) bool {
	_, ok := a.m[field]
	return ok
}

// Only checks that no field outside allowed is present.
func (a *Args) Only(allowed ...string) error {
	var extra []string
	for k := range a.m {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	slices.Sort(extra)
	takes := strings.Join(allowed, ", ")
	if takes == "" {
		takes = "nothing else"
	}
	return Invalid(extra[0], "%s does not take %q (it takes: %s)", a.what, extra[0], takes)
}

func (a *Args) missing(field, want string) error {
	return Invalid(field, "%s needs %s: %s", a.what, field, want)
}

func (a *Args) wrong(field, want string, raw json.RawMessage) error {
	var v any
	_ = json.Unmarshal(raw, &v)
	return Invalid(field, "%s of %s must be %s, got %s", field, a.what, want, Describe(v))
}

// String reads a string field; ok is false when it is absent and not
// required.
func (a *Args) String(field string, required bool, want string) (s string, ok bool, err error) {
	raw, ok := a.m[field]
	if !ok {
		if required {
			return "", false, a.missing(field, want)
		}
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, a.wrong(field, "a string ("+want+")", raw)
	}
	return s, true, nil
}

// Number reads a number field.
func (a *Args) Number(field string, required bool, want string) (n float64, ok bool, err error) {
	raw, ok := a.m[field]
	if !ok {
		if required {
			return 0, false, a.missing(field, want)
		}
		return 0, false, nil
	}
	if err := json.Unmarshal(raw, &n); err != nil || math.IsInf(n, 0) {
		return 0, false, a.wrong(field, "a number ("+want+")", raw)
	}
	return n, true, nil
}

// Numbers reads an array of n numbers.
func (a *Args) Numbers(field string, n int, required bool, want string) (v []float64, ok bool, err error) {
	raw, ok := a.m[field]
	if !ok {
		if required {
			return nil, false, a.missing(field, want)
		}
		return nil, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil || len(v) != n {
		return nil, false, a.wrong(field, want, raw)
	}
	return v, true, nil
}

// Strings reads an array of strings.
func (a *Args) Strings(field string, required bool, want string) (v []string, ok bool, err error) {
	raw, ok := a.m[field]
	if !ok {
		if required {
			return nil, false, a.missing(field, want)
		}
		return nil, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, false, a.wrong(field, "an array of strings ("+want+")", raw)
	}
	return v, true, nil
}

// Path reads an array of {"x": ..., "y": ...} objects.
func (a *Args) Path(field string, want string) ([][2]float64, error) {
	raw, ok := a.m[field]
	if !ok {
		return nil, a.missing(field, want)
	}
	var pts []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &pts); err != nil {
		return nil, a.wrong(field, want, raw)
	}
	out := make([][2]float64, len(pts))
	for i, p := range pts {
		for j, k := range []string{"x", "y"} {
			var n float64
			if err := json.Unmarshal(p[k], &n); err != nil {
				return nil, Invalid(field, "%s[%d] of %s must be {\"x\": number, \"y\": number}", field, i, a.what)
			}
			out[i][j] = n
		}
		if len(p) != 2 {
			return nil, Invalid(field, "%s[%d] of %s must have exactly x and y", field, i, a.what)
		}
	}
	return out, nil
}

// Describe names the JSON type of a decoded value, for messages.
func Describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// Seconds converts a duration in seconds the model gave to milliseconds,
// checked against desktop.MaxDurationMS.
func Seconds(s float64, field string, positive bool) (int, error) {
	ms := int(math.Round(s * 1000))
	lo := 0
	if positive {
		lo = 1
	}
	if math.IsNaN(s) || ms < lo || ms > desktop.MaxDurationMS {
		return 0, Invalid(field, "%s must be %g to %d seconds, got %g", field, float64(lo)/1000, desktop.MaxDurationMS/1000, s)
	}
	return ms, nil
}
