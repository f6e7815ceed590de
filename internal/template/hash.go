package template

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// BuilderVersion is part of every template's hash. Raise it whenever the
// builder changes what it makes from the same recipe, so existing builds
// are not reused.
const BuilderVersion = "1"

// CanonicalJSON is the recipe's canonical encoding: expanded, defaults
// filled in, packages sorted, object keys in a fixed order.
func (r *Recipe) CanonicalJSON() ([]byte, error) {
	x, err := Expand(r)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("template: encode recipe: %w", err)
	}
	return data, nil
}

// Hash identifies what a build of r makes: the SHA-256, in hex, of the
// builder version and the recipe's canonical JSON.
func (r *Recipe) Hash() (string, error) {
	data, err := r.CanonicalJSON()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte("cubicle-template-builder " + BuilderVersion + "\n"))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)), nil
}
