package template

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore(Config{Dir: filepath.Join(t.TempDir(), "templates")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeBuild puts a complete build of name on disk, as Build leaves it.
func fakeBuild(t *testing.T, s *Store, name, hash string, created time.Time) *Template {
	t.Helper()
	r := tinyRecipe()
	r.Name = name
	tm := &Template{Name: name, Hash: hash, Recipe: r, Created: created, SizeBytes: 1 << 20, Files: 3,
		Packages: []Package{{Name: "busybox", Version: "1"}}}
	dir := s.buildDir(name, hash)
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeMeta(filepath.Join(dir, "meta.json"), tm); err != nil {
		t.Fatal(err)
	}
	tm.Dir, tm.RootFS = dir, filepath.Join(dir, "rootfs")
	return tm
}

func hashOf(c byte) string { return strings.Repeat(string(c), 64) }

func refs(ts []*Template) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Ref())
	}
	return out
}

func TestStoreListGetResolve(t *testing.T) {
	s := newTestStore(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fakeBuild(t, s, "desktop", hashOf('a'), t0)
	newest := fakeBuild(t, s, "desktop", hashOf('b'), t0.Add(time.Hour))
	fakeBuild(t, s, "desktop", "ab"+hashOf('c')[2:], t0.Add(-time.Hour))
	fakeBuild(t, s, "other", hashOf('d'), t0)

	// Things that are not complete builds are not listed.
	if err := os.MkdirAll(filepath.Join(s.buildDir("desktop", hashOf('e')), "rootfs"), 0o755); err != nil {
		t.Fatal(err) // no meta.json
	}
	wrong := fakeBuild(t, s, "desktop", hashOf('f'), t0.Add(2*time.Hour))
	if err := os.Rename(wrong.Dir, s.buildDir("desktop", hashOf('0'))); err != nil {
		t.Fatal(err) // meta.json names another hash
	}
	noRoot := fakeBuild(t, s, "desktop", hashOf('1'), t0.Add(3*time.Hour))
	if err := os.Remove(noRoot.RootFS); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.nameDir("desktop"), ".tmp-aaaaaaaaaaaa-1", "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}

	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"desktop@bbbbbbbbbbbb", "desktop@aaaaaaaaaaaa", "desktop@abcccccccccc", "other@dddddddddddd"}
	if got := refs(all); !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}

	got, err := s.Get("desktop")
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != newest.Hash || got.RootFS != newest.RootFS || !got.Created.Equal(newest.Created) {
		t.Errorf("Get(desktop) = %s created %v, want the newest %s", got.Ref(), got.Created, newest.Ref())
	}
	if got.Recipe == nil || got.Recipe.Name != "desktop" || len(got.Packages) != 1 {
		t.Errorf("Get(desktop) lost meta.json fields: %+v", got)
	}
	if diff := slices.Compare(got.Env(), []string{"A=1", "B=2"}); diff != 0 {
		t.Errorf("Env() = %v, want [A=1 B=2]", got.Env())
	}

	resolve := []struct {
		ref  string
		want string // ref of the result, or the error class
		err  error
	}{
		{ref: "desktop", want: "desktop@bbbbbbbbbbbb"},
		{ref: "", want: "desktop@bbbbbbbbbbbb"},
		{ref: "default", want: "desktop@bbbbbbbbbbbb"},
		{ref: "desktop@aaaa", want: "desktop@aaaaaaaaaaaa"},
		{ref: "desktop@abcc", want: "desktop@abcccccccccc"},
		{ref: "default@" + hashOf('a'), want: "desktop@aaaaaaaaaaaa"},
		{ref: "other", want: "other@dddddddddddd"},
		{ref: "desktop@ab", err: desktop.ErrInvalid},   // too short
		{ref: "desktop@aaaz", err: desktop.ErrInvalid}, // not hex
		{ref: "desktop@eeee", err: desktop.ErrNotFound},
		{ref: "desktop@1111", err: desktop.ErrNotFound},
		{ref: "nope", err: desktop.ErrNotFound},
		{ref: "Nope", err: desktop.ErrInvalid},
		{ref: "../x", err: desktop.ErrInvalid},
	}
	for _, tc := range resolve {
		got, err := s.Resolve(tc.ref)
		switch {
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("Resolve(%q) = %v, %v; want an error matching %v", tc.ref, got, err, tc.err)
		case tc.err == nil && err != nil:
			t.Errorf("Resolve(%q): %v", tc.ref, err)
		case tc.err == nil && got.Ref() != tc.want:
			t.Errorf("Resolve(%q) = %s, want %s", tc.ref, got.Ref(), tc.want)
		}
	}
	// Two builds sharing a prefix need more of it.
	fakeBuild(t, s, "desktop", "abcd"+hashOf('9')[4:], t0)
	if _, err := s.Resolve("desktop@abc"); !errors.Is(err, desktop.ErrInvalid) {
		t.Errorf("Resolve of an ambiguous prefix = %v, want ErrInvalid", err)
	}
}

func TestStoreRemove(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := fakeBuild(t, s, "desktop", hashOf('a'), t0)
	b := fakeBuild(t, s, "desktop", hashOf('b'), t0.Add(time.Hour))
	fakeBuild(t, s, "other", hashOf('d'), t0)

	// In use: refused, nothing removed.
	var asked []string
	err := s.Remove(ctx, "desktop", func(t *Template) bool {
		asked = append(asked, t.Ref())
		return t.Hash == a.Hash
	})
	if !errors.Is(err, desktop.ErrConflict) {
		t.Fatalf("Remove of a template in use = %v, want ErrConflict", err)
	}
	if len(asked) == 0 {
		t.Errorf("the in-use check was not asked")
	}
	if all, _ := s.List(); len(all) != 3 {
		t.Errorf("after a refused Remove, List = %v, want all 3 builds", refs(all))
	}

	// One build by hash.
	if err := s.Remove(ctx, "desktop@"+b.Hash[:8], func(*Template) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed build's directory: stat = %v, want not exist", err)
	}
	if got, err := s.Get("desktop"); err != nil || got.Hash != a.Hash {
		t.Errorf("Get after removing the newest = %v, %v; want %s", got, err, a.Ref())
	}

	// Every build of a name; the alias stands for desktop.
	if err := s.Remove(ctx, "default", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("desktop"); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("Get after removing every build = %v, want ErrNotFound", err)
	}
	if all, _ := s.List(); !slices.Equal(refs(all), []string{"other@dddddddddddd"}) {
		t.Errorf("List = %v, want only other", refs(all))
	}
	entries, _ := os.ReadDir(s.nameDir("desktop"))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("left in the name's directory: %s", e.Name())
		}
	}

	if err := s.Remove(ctx, "desktop", nil); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("Remove of nothing = %v, want ErrNotFound", err)
	}
	if err := s.Remove(ctx, "../etc", nil); !errors.Is(err, desktop.ErrInvalid) {
		t.Errorf("Remove(../etc) = %v, want ErrInvalid", err)
	}
}

func TestStoreLockWaits(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	h := hashOf('a')
	unlock, err := s.lock(ctx, "x", h, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A second taker waits, says so once, and gets the lock when it is
	// released.
	waited := make(chan struct{})
	got := make(chan error, 1)
	go func() {
		u, err := s.lock(ctx, "x", h, func() { close(waited) })
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case <-waited:
	case err := <-got:
		t.Fatalf("second lock returned %v while the first was held", err)
	case <-time.After(30 * time.Second):
		t.Fatal("second taker never reported waiting")
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("second lock: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("second taker did not get the released lock")
	}

	// A taker whose context ends gives up.
	unlock, err = s.lock(ctx, "x", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	cctx, cancel := context.WithCancel(ctx)
	_, err = s.lock(cctx, "x", h, cancel)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("lock with a cancelled context = %v, want context.Canceled", err)
	}
	// A different hash is a different lock.
	u2, err := s.lock(ctx, "x", hashOf('b'), func() { t.Error("waited for another hash's lock") })
	if err != nil {
		t.Fatal(err)
	}
	u2()
}

func TestConfigValidate(t *testing.T) {
	for _, dir := range []string{"", "relative/dir"} {
		if _, err := NewStore(Config{Dir: dir}); !errors.Is(err, desktop.ErrInvalid) {
			t.Errorf("NewStore(Dir: %q) = %v, want ErrInvalid", dir, err)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 900 << 20: "900 MiB", 3 << 30: "3.0 GiB", 1289990144: "1.2 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRemoveStale(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	dead := filepath.Join(s.nameDir("x"), ".tmp-"+hashOf('a')+"-1")
	live := filepath.Join(s.nameDir("x"), ".tmp-"+hashOf('b')+"-2")
	own := filepath.Join(s.nameDir("x"), ".tmp-"+hashOf('c')+"-3")
	for _, d := range []string{dead, live, own} {
		if err := os.MkdirAll(filepath.Join(d, "rootfs", "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A build of b runs (holds its lock); this build of c holds its own.
	unlockB, err := s.lock(ctx, "x", hashOf('b'), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockB()
	s.removeStale("x", hashOf('c'))
	for d, wantGone := range map[string]bool{dead: true, live: false, own: true} {
		_, err := os.Stat(d)
		if gone := errors.Is(err, os.ErrNotExist); gone != wantGone {
			t.Errorf("%s: gone = %v, want %v", filepath.Base(d), gone, wantGone)
		}
	}
	// The dead build's lock was taken only to check, and is free again.
	if unlock, ok := s.tryLock("x", hashOf('a')); !ok {
		t.Errorf("the lock of a removed build is still held")
	} else {
		unlock()
	}
}
