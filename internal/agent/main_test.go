package agent

import (
	"io"
	"log"
	"os"
	"testing"

	"github.com/jezek/xgb"
)

func TestMain(m *testing.M) {
	// xgb logs a line for every connection made without an .Xauthority.
	xgb.Logger = log.New(io.Discard, "", 0)
	code := m.Run()
	for _, d := range benchDesktops {
		d.sbx.Close()
		d.draw.Close()
		d.stop()
	}
	os.Exit(code)
}
