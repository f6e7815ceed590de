// Package cuatest has what the tests of the model adapters share: golden
// files, a fake desktop that records what it was sent, and a real
// `cubicle agent` on a display of its own.
package cuatest

import (
	"bytes"
	"encoding/json"
	"image"
	_ "image/jpeg" // decode JPEG screenshots
	_ "image/png"  // decode PNG screenshots
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Golden compares got, as indented JSON, with the file testdata/<name>.json;
// with update set it writes the file instead.
func Golden(t *testing.T, name string, got any, update bool) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", name+".json")
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if d := cmp.Diff(string(want), string(b)); d != "" {
		t.Errorf("%s differs from the golden file (-want +got):\n%s", path, d)
	}
}

// ImageSize decodes an encoded image's size, or returns false.
func ImageSize(data []byte) (image.Point, string, bool) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return image.Point{}, "", false
	}
	return image.Point{X: cfg.Width, Y: cfg.Height}, format, true
}
