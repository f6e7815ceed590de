package mcpserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
)

// decodeArgs checks the arguments of a tool call against its input schema
// and decodes them into v. Its errors name the argument and say what it
// takes, in words a model can act on.
func decodeArgs(raw json.RawMessage, s *jsonschema.Schema, v any) error {
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return invalid("arguments", "the arguments are not valid JSON: %v", err)
	}
	if _, ok := generic.(map[string]any); !ok {
		return invalid("arguments", "the arguments must be a JSON object, got %s", kindOf(generic))
	}
	if err := check("", generic, s); err != nil {
		return err
	}
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// check has seen to types and names; what is left is rare.
		return invalid("arguments", "bad arguments: %v", err)
	}
	return nil
}

// check checks the value v of the argument name against s.
func check(name string, v any, s *jsonschema.Schema) error {
	label := name
	if label == "" {
		label = "this tool"
	}
	if v == nil {
		return invalid(name, "%s is null; leave it out instead", name)
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return mistyped(name, "an object", v)
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				return invalid(join(name, r), "%s is missing: %s", join(name, r), s.Properties[r].Description)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := s.Properties[k]
			if p == nil {
				if ap := s.AdditionalProperties; ap != nil && ap.Not == nil {
					p = ap
				} else {
					return invalid(join(name, k), "unknown argument %q; %s takes %s", k, label, strings.Join(propertyNames(s), ", "))
				}
			}
			if err := check(join(name, k), m[k], p); err != nil {
				return err
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return mistyped(name, "an array", v)
		}
		for i, e := range a {
			if err := check(fmt.Sprintf("%s[%d]", name, i), e, s.Items); err != nil {
				return err
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return mistyped(name, "a string", v)
		}
		if len(s.Enum) > 0 && !slices.Contains(s.Enum, any(str)) {
			return invalid(name, "%s must be one of %s, got %q", name, enumList(s.Enum), str)
		}
		if s.Pattern != "" {
			if re, err := regexp.Compile(s.Pattern); err == nil && !re.MatchString(str) {
				return invalid(name, "%s %q is not in the expected form: %s", name, str, s.Description)
			}
		}
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok && s.Type == "integer" {
			return mistyped(name, "a whole number", v)
		} else if !ok {
			return mistyped(name, "a number", v)
		}
		f, err := n.Float64()
		if err != nil {
			return invalid(name, "%s is not a usable number: %s", name, n)
		}
		if s.Type == "integer" {
			if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil || math.Trunc(f) != f {
				return invalid(name, "%s must be a whole number, got %s", name, n)
			}
		}
		if err := bounds(name, f, n.String(), s); err != nil {
			return err
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return mistyped(name, "true or false", v)
		}
	}
	return nil
}

// bounds checks a number against the minimum and maximum of s.
func bounds(name string, f float64, shown string, s *jsonschema.Schema) error {
	lo, hi := s.Minimum, s.Maximum
	if (lo == nil || f >= *lo) && (hi == nil || f <= *hi) {
		return nil
	}
	switch {
	case lo != nil && hi != nil:
		return invalid(name, "%s must be %s to %s, got %s", name, num(*lo), num(*hi), shown)
	case lo != nil:
		return invalid(name, "%s must be at least %s, got %s", name, num(*lo), shown)
	}
	return invalid(name, "%s must be at most %s, got %s", name, num(*hi), shown)
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func mistyped(name, want string, v any) error {
	return invalid(name, "%s must be %s, got %s", name, want, kindOf(v))
}

// kindOf names the JSON kind of a decoded value.
func kindOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + x.String()
	case string:
		return fmt.Sprintf("the string %q", x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func propertyNames(s *jsonschema.Schema) []string {
	if len(s.PropertyOrder) > 0 {
		return s.PropertyOrder
	}
	names := make([]string, 0, len(s.Properties))
	for k := range s.Properties {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func enumList(values []any) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ", ")
}
