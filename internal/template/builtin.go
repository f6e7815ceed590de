package template

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// DefaultName is the built-in recipe sandboxes use when they name none.
const DefaultName = "desktop"

//go:embed recipes/*.json
var builtinFS embed.FS

// Builtins returns the names of the built-in recipes, sorted.
func Builtins() []string {
	entries, err := fs.ReadDir(builtinFS, "recipes")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Builtin returns the built-in recipe called name, expanded.
func Builtin(name string) (*Recipe, error) {
	data, err := BuiltinJSON(name)
	if err != nil {
		return nil, err
	}
	r, err := Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("template: built-in recipe %s: %w", name, err)
	}
	if r.Name != name {
		return nil, fmt.Errorf("template: built-in recipe %s is named %q: %w", name, r.Name, desktop.ErrInternal)
	}
	return r, nil
}

// BuiltinJSON returns the JSON text of the built-in recipe called name, as
// a starting point for a recipe of one's own.
func BuiltinJSON(name string) ([]byte, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("template: built-in recipe %q: %w", name, desktop.ErrNotFound)
	}
	data, err := builtinFS.ReadFile("recipes/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("template: built-in recipe %q: %w", name, desktop.ErrNotFound)
	}
	return data, nil
}
