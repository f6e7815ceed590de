package store_test

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

func TestDisplayModeStored(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "cubicle.db"))
	defer s.Close()
	ctx := t.Context()
	now := time.Now()
	for _, mode := range []sandbox.DisplayMode{sandbox.DisplayManaged, sandbox.DisplayExternal} {
		rec := sandbox.Record{ID: sandbox.NewID(), Owner: "o", Template: "desktop", State: sandbox.StateRunning,
			Created: now, EndAt: now.Add(time.Minute), Token: "tok",
			Params: sandbox.Params{Width: 1024, Height: 768, DPI: 96, DisplayMode: mode}}
		if err := s.InsertSandbox(ctx, rec); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetSandbox(ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Params.DisplayMode != mode {
			t.Errorf("sandbox stored with display mode %q read back as %q", mode, got.Params.DisplayMode)
		}
	}
}

func TestPublicPortsStored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cubicle.db")
	s := open(t, path)
	ctx := t.Context()
	now := time.Now()
	ids := map[bool]string{true: sandbox.NewID(), false: sandbox.NewID()}
	for public, id := range ids {
		rec := sandbox.Record{ID: id, Owner: "o", Template: "desktop", State: sandbox.StateRunning,
			Created: now, EndAt: now.Add(time.Minute), Token: "tok",
			Params: sandbox.Params{Width: 1024, Height: 768, DPI: 96, PublicPorts: public}}
		if err := s.InsertSandbox(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for public, id := range ids {
		got, err := s.GetSandbox(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Params.PublicPorts != public {
			t.Errorf("sandbox stored with PublicPorts %v read back as %v", public, got.Params.PublicPorts)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A row written before the field existed has no public_ports key.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var spec string
	if err := db.QueryRow(`SELECT spec FROM sandboxes WHERE id = ?`, ids[false]).Scan(&spec); err != nil {
		t.Fatal(err)
	}
	if want := `{"width":1024,"height":768,"dpi":96,"internet":false}`; spec != want {
		t.Errorf("spec of a sandbox without public ports = %s, want %s (the form older servers wrote)", spec, want)
	}
	old := `{"width":800,"height":600,"dpi":96,"internet":true}`
	if _, err := db.Exec(`UPDATE sandboxes SET spec = ? WHERE id = ?`, old, ids[true]); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = open(t, path)
	defer s.Close()
	got, err := s.GetSandbox(ctx, ids[true])
	if err != nil {
		t.Fatalf("GetSandbox of an old row: %v", err)
	}
	if got.Params.PublicPorts || got.Params.Width != 800 || !got.Params.Network.Internet {
		t.Errorf("old row read as %+v, want 800x600 with internet and PublicPorts false", got.Params)
	}
}
