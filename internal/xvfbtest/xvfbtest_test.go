package xvfbtest

import (
	"os/exec"
	"strings"
	"testing"
)

func TestStartAnswers(t *testing.T) {
	s := Start(t, Options{Width: 800, Height: 600})
	out, err := exec.Command("xdpyinfo", "-display", s.Display).CombinedOutput()
	if err != nil {
		t.Fatalf("xdpyinfo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "800x600 pixels") {
		t.Errorf("xdpyinfo does not show 800x600:\n%s", out)
	}
}
