package cua

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublicPackagesImportNothingInternal walks the module's public
// packages (everything outside internal/, cmd/ and examples/) and checks
// that none of them imports an internal package, so that users of the SDK
// and the adapters never depend on the server's code.
func TestPublicPackagesImportNothingInternal(t *testing.T) {
	const module = "github.com/cubicle-dev/cubicle/"
	root := ".."
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil // the module root holds no package
		}
		switch first, _, _ := strings.Cut(filepath.ToSlash(rel), "/"); {
		case first == "internal", first == "cmd", first == "examples", first == "compat", first == "scripts",
			strings.HasPrefix(d.Name(), "."), d.Name() == "testdata", d.Name() == "node_modules":
			return fs.SkipDir
		}
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		n++
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, module) && (strings.HasPrefix(imp, module+"internal/") || strings.Contains(imp, "/internal/")) {
				t.Errorf("public package %s imports %s", rel, imp)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d public packages checked", n)
	if n < 5 {
		t.Errorf("found %d public packages; the walk missed the module", n)
	}
}
