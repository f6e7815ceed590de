package openaicua

import (
	"fmt"
	"os"
	"testing"

	"github.com/cubicle-dev/cubicle/internal/cuatest"
)

// cubicleBinary is the cubicle binary the tests on a real desktop run.
var cubicleBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "openaicua-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cubicleBinary, err = cuatest.BuildCubicle(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
