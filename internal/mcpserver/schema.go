package mcpserver

import (
	"fmt"
	"slices"

	"github.com/google/jsonschema-go/jsonschema"
)

// inputSchema is the JSON schema of In: inferred from its fields (the
// descriptions from their jsonschema tags), optional pointers shown as their
// plain type, then refined by refine (enums, bounds, defaults). It panics
// on a schema that cannot be made, which is a programming error caught by
// every test that builds a Server.
func inputSchema[In any](refine func(props map[string]*jsonschema.Schema)) *jsonschema.Schema {
	s, err := jsonschema.For[In](&jsonschema.ForOptions{})
	if err != nil {
		panic(fmt.Sprintf("mcpserver: input schema: %v", err))
	}
	for _, p := range s.Properties {
		plain(p)
	}
	if refine != nil {
		refine(s.Properties)
	}
	return s
}

// plain turns the ["null", T] of an optional pointer into T: leaving a
// field out is how a caller says "none".
func plain(p *jsonschema.Schema) {
	if len(p.Types) == 2 && slices.Contains(p.Types, "null") {
		for _, t := range p.Types {
			if t != "null" {
				p.Type = t
			}
		}
		p.Types = nil
	}
	if p.Items != nil {
		plain(p.Items)
	}
	for _, q := range p.Properties {
		plain(q)
	}
}

// enum restricts a string property to values.
func enum(p *jsonschema.Schema, values ...string) {
	p.Enum = make([]any, len(values))
	for i, v := range values {
		p.Enum[i] = v
	}
}

// between bounds a number property.
func between(p *jsonschema.Schema, lo, hi float64) {
	p.Minimum, p.Maximum = &lo, &hi
}

// atLeast bounds a number property from below.
func atLeast(p *jsonschema.Schema, lo float64) {
	p.Minimum = &lo
}
