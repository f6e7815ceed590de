package template

import (
	"encoding/json"
	"strings"
	"testing"
)

func tinyRecipe() *Recipe {
	return &Recipe{
		Name:     "tiny",
		Suite:    "bookworm",
		Mirror:   DefaultMirror,
		Variant:  "minbase",
		Packages: []string{"busybox", "less"},
		Steps: []Step{
			{Run: "echo hi > /root/hi"},
			{Write: &WriteFile{Path: "/etc/x", Mode: "0644", Content: "x"}},
		},
		User: &User{Name: "user", UID: 1000},
		Env:  map[string]string{"A": "1", "B": "2"},
	}
}

func mustHash(t *testing.T, r *Recipe) string {
	t.Helper()
	h, err := r.Hash()
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return h
}

func TestHashStable(t *testing.T) {
	base := mustHash(t, tinyRecipe())
	if len(base) != 64 || strings.Trim(base, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not 64 hex digits", base)
	}
	same := map[string]func(r *Recipe){
		"nothing":            func(r *Recipe) {},
		"packages reordered": func(r *Recipe) { r.Packages = []string{"less", "busybox"} },
		"package repeated":   func(r *Recipe) { r.Packages = append(r.Packages, "less") },
		"defaults left out":  func(r *Recipe) { r.Mirror, r.Variant = "", "" },
		"mode without zero":  func(r *Recipe) { r.Steps[1].Write.Mode = "644" },
		"mode left out":      func(r *Recipe) { r.Steps[1].Write.Mode = "" },
		"env rebuilt": func(r *Recipe) {
			r.Env = map[string]string{"B": "2", "A": "1"}
		},
	}
	for name, mutate := range same {
		t.Run("same/"+name, func(t *testing.T) {
			r := tinyRecipe()
			mutate(r)
			if got := mustHash(t, r); got != base {
				t.Errorf("hash = %s, want %s", got, base)
			}
		})
	}
	// The hash survives a trip through JSON and Parse.
	data, err := json.Marshal(tinyRecipe())
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustHash(t, parsed); got != base {
		t.Errorf("hash after JSON and Parse = %s, want %s", got, base)
	}

	different := map[string]func(r *Recipe){
		"name":          func(r *Recipe) { r.Name = "tiny2" },
		"suite":         func(r *Recipe) { r.Suite = "trixie" },
		"mirror":        func(r *Recipe) { r.Mirror = "http://ftp.de.debian.org/debian" },
		"variant":       func(r *Recipe) { r.Variant = "buildd" },
		"package added": func(r *Recipe) { r.Packages = append(r.Packages, "nano") },
		"package gone":  func(r *Recipe) { r.Packages = r.Packages[:1] },
		"run changed":   func(r *Recipe) { r.Steps[0].Run = "echo ho > /root/hi" },
		"steps swapped": func(r *Recipe) { r.Steps[0], r.Steps[1] = r.Steps[1], r.Steps[0] },
		"step added":    func(r *Recipe) { r.Steps = append(r.Steps, Step{Run: "true"}) },
		"write path":    func(r *Recipe) { r.Steps[1].Write.Path = "/etc/y" },
		"write mode":    func(r *Recipe) { r.Steps[1].Write.Mode = "0600" },
		"write content": func(r *Recipe) { r.Steps[1].Write.Content = "y" },
		"user name":     func(r *Recipe) { r.User.Name = "agent" },
		"user uid":      func(r *Recipe) { r.User.UID = 1001 },
		"user sudo":     func(r *Recipe) { r.User.Sudo = true },
		"no user":       func(r *Recipe) { r.User = nil },
		"env value":     func(r *Recipe) { r.Env["A"] = "2" },
		"env key":       func(r *Recipe) { r.Env["C"] = "3" },
	}
	seen := map[string]string{base: "base"}
	for name, mutate := range different {
		t.Run("different/"+name, func(t *testing.T) {
			r := tinyRecipe()
			mutate(r)
			got := mustHash(t, r)
			if other, dup := seen[got]; dup {
				t.Errorf("hash %s is the same as for %s", got, other)
			}
			seen[got] = name
		})
	}
}

// A recipe extending a built-in hashes as its expansion, so a change to
// the built-in changes the hash of every recipe built on it.
func TestHashCoversBase(t *testing.T) {
	r, err := Parse(strings.NewReader(`{"name":"mine","from":"desktop","steps":[{"run":"true"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	h1 := mustHash(t, r)
	r.Steps[0].Run = "false"
	if h2 := mustHash(t, r); h2 == h1 {
		t.Errorf("changing a step of the base left the hash at %s", h1)
	}
}
