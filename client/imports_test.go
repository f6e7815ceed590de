package client

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports checks that the SDK and its fake use only the standard
// library and packages desktop and apitype, so that users do not pull in
// the server.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/cubicle-dev/cubicle/desktop": true,
		"github.com/cubicle-dev/cubicle/apitype": true,
	}
	for _, dir := range []string{".", "clienttest"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			first, _, _ := strings.Cut(imp, "/")
			if strings.Contains(first, ".") && !allowed[imp] {
				t.Errorf("package %s imports %s; it may use only the standard library and packages desktop and apitype", pkg.ImportPath, imp)
			}
		}
	}
}
