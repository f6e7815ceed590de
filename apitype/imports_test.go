package apitype

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports checks that the package uses only the standard library, so
// that the SDK and the server can share it without pulling anything in.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("package %s imports %s; it may use only the standard library", pkg.ImportPath, imp)
		}
	}
}
