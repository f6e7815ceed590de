package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeysWithoutServerState(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := runKeys(context.Background(), []string{"ls", "--state-dir", dir}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no server state in "+dir) {
		t.Errorf("keys ls on an empty directory: exit %d, stderr %q; want 1 and a hint", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "cubicle.db")); err == nil {
		t.Error("keys ls made a database where there was none")
	}
}
