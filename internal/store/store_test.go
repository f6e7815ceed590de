package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
	"github.com/cubicle-dev/cubicle/internal/store"
)

func open(t *testing.T, path string) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	sandboxtest.TestStore(t, func(t *testing.T) sandbox.Store {
		return open(t, filepath.Join(t.TempDir(), "cubicle.db"))
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "cubicle.db")
	s := open(t, path)
	ctx := t.Context()
	now := time.Now()
	rec := sandbox.Record{ID: sandbox.NewID(), Owner: "o", Template: "desktop", State: sandbox.StateRunning,
		Created: now, EndAt: now.Add(time.Minute), Metadata: map[string]string{"k": "v"}, Token: "tok"}
	if err := s.InsertSandbox(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, sandbox.Key{ID: "k1", Owner: "o", Prefix: "cbk_1", Hash: "h", Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	got, err := s.GetSandbox(ctx, rec.ID)
	if err != nil {
		t.Fatalf("GetSandbox after reopening: %v", err)
	}
	if !got.EndAt.Equal(rec.EndAt) || got.Metadata["k"] != "v" || got.Token != "tok" {
		t.Errorf("after reopening: end %v metadata %v token %q; want %v, k=v, tok", got.EndAt, got.Metadata, got.Token, rec.EndAt)
	}
	if _, err := s.KeyByHash(ctx, "h"); err != nil {
		t.Errorf("KeyByHash after reopening: %v", err)
	}
}

func TestFileIsPrivateAndWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cubicle.db")
	s := open(t, path)
	defer s.Close()
	if err := s.AddEvent(t.Context(), sandbox.Event{Time: time.Now(), SandboxID: "x", Kind: "created"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if mode := fi.Mode().Perm(); mode&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", filepath.Base(p), mode)
		}
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var versions int
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != 1 {
		t.Errorf("schema_migrations has %d rows, want 1", versions)
	}
}

func TestMigrationsRunOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cubicle.db")
	for range 3 {
		open(t, path).Close()
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("after three opens, schema_migrations has %d rows, want 1", n)
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cubicle.db")
	open(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations(version, applied) VALUES(99, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := store.Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	if !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("Open error %q does not name the schema version", err)
	}
}
