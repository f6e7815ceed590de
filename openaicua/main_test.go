package openaicua

import (
	"os"
	"testing"

	"github.com/cubicle-dev/cubicle/internal/cuatest"
)

// cubicleBinary is the cubicle binary the tests on a real desktop run.
var cubicleBinary string

func TestMain(m *testing.M) { os.Exit(cuatest.Main(m, &cubicleBinary)) }
