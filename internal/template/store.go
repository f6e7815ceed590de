package template

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/desktop"
)

// DefaultDir is where a server keeps its templates unless told otherwise.
const DefaultDir = "/var/lib/cubicle/templates"

// Config says where a Store keeps templates and how it builds them.
type Config struct {
	// Dir is the store's directory; it is created (mode 0755) if missing.
	Dir string
	// Debootstrap is the debootstrap program; empty means "debootstrap"
	// looked up in PATH when a build starts.
	Debootstrap string
	// Logger receives one line per build; nil discards.
	Logger *slog.Logger
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("template: config: dir %q is not an absolute path: %w", c.Dir, desktop.ErrInvalid)
	}
	return nil
}

// Store keeps built templates in a directory and builds missing ones. Its
// methods are safe for concurrent use, also by several processes sharing
// the directory.
type Store struct {
	dir         string
	debootstrap string
	log         *slog.Logger
}

// NewStore opens (creating if needed) the store in cfg.Dir.
func NewStore(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("template: open store: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{dir: filepath.Clean(cfg.Dir), debootstrap: cfg.Debootstrap, log: log}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Template is a complete build in the store. It is what meta.json holds,
// plus where it is.
type Template struct {
	Name string `json:"name"`
	// Hash is the SHA-256 of the builder version and the recipe (see
	// Recipe.Hash), in hex.
	Hash string `json:"hash"`
	// Recipe is the expanded recipe it was built from.
	Recipe  *Recipe   `json:"recipe"`
	Created time.Time `json:"created"`
	// BuildSeconds is how long the build took.
	BuildSeconds float64 `json:"build_seconds"`
	// SizeBytes is the disk space the root filesystem takes (as du counts
	// it), Files the number of its entries.
	SizeBytes int64 `json:"size_bytes"`
	Files     int64 `json:"files"`
	// Packages are the Debian packages installed, sorted by name.
	Packages []Package `json:"packages"`

	// Dir is the build's directory; RootFS its root filesystem, owned by
	// root, to be used read-only (as an overlay's lower layer).
	Dir    string `json:"-"`
	RootFS string `json:"-"`
}

// Package is an installed Debian package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Ref is how the template is named unambiguously: name@<12 hex digits>.
func (t *Template) Ref() string { return t.Name + "@" + t.Hash[:12] }

// Env is the environment sandboxes of the template start with, as
// KEY=value, sorted.
func (t *Template) Env() []string {
	if t.Recipe == nil {
		return nil
	}
	env := make([]string, 0, len(t.Recipe.Env))
	for k, v := range t.Recipe.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

var hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *Store) nameDir(name string) string        { return filepath.Join(s.dir, name) }
func (s *Store) buildDir(name, hash string) string { return filepath.Join(s.dir, name, hash) }
func (s *Store) lockPath(name, hash string) string {
	return filepath.Join(s.dir, name, "."+hash+".lock")
}

// load reads the build name/hash, or returns ok false when it is not a
// complete build.
func (s *Store) load(name, hash string) (*Template, bool) {
	dir := s.buildDir(name, hash)
	data, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, false
	}
	var t Template
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, false
	}
	if t.Name != name || t.Hash != hash || t.Created.IsZero() || t.Recipe == nil {
		return nil, false
	}
	fi, err := os.Lstat(filepath.Join(dir, "rootfs"))
	if err != nil || !fi.IsDir() {
		return nil, false
	}
	t.Dir = dir
	t.RootFS = filepath.Join(dir, "rootfs")
	return &t, true
}

// List returns every complete build in the store, by name, newest first.
func (s *Store) List() ([]*Template, error) {
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("template: list: %w", err)
	}
	var out []*Template
	for _, n := range names {
		if !n.IsDir() || !nameRE.MatchString(n.Name()) {
			continue
		}
		ts, err := s.builds(n.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// builds returns the complete builds of name, newest first.
func (s *Store) builds(name string) ([]*Template, error) {
	entries, err := os.ReadDir(s.nameDir(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("template: list %s: %w", name, err)
	}
	var out []*Template
	for _, e := range entries {
		if !e.IsDir() || !hashRE.MatchString(e.Name()) {
			continue
		}
		if t, ok := s.load(name, e.Name()); ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *Template) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Hash, b.Hash)
	})
	return out, nil
}

// Get returns the newest complete build called name.
func (s *Store) Get(name string) (*Template, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("template: get %q: bad name: %w", name, desktop.ErrInvalid)
	}
	ts, err := s.builds(name)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("template: %s is not built: %w", name, desktop.ErrNotFound)
	}
	return ts[0], nil
}

// Resolve finds a template by reference: "name" (its newest build),
// "name@hash" where hash is at least 4 leading hex digits of one build's
// hash, or "" and "default", which stand for DefaultName.
func (s *Store) Resolve(ref string) (*Template, error) {
	name, prefix, byHash := strings.Cut(ref, "@")
	if name == "" || name == "default" {
		name = DefaultName
	}
	if !byHash {
		return s.Get(name)
	}
	if !nameRE.MatchString(name) || len(prefix) < 4 || len(prefix) > 64 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("template: resolve %q: want name or name@hash with at least 4 hex digits: %w", ref, desktop.ErrInvalid)
	}
	ts, err := s.builds(name)
	if err != nil {
		return nil, err
	}
	var found []*Template
	for _, t := range ts {
		if strings.HasPrefix(t.Hash, prefix) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("template: %s is not built: %w", ref, desktop.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("template: %s matches %d builds, give more of the hash: %w", ref, len(found), desktop.ErrInvalid)
}

// Remove deletes builds: every build of a name, or the one of name@hash.
// inUse, when not nil, is asked about each build first; if it says a build
// is in use, nothing is removed and the error matches desktop.ErrConflict.
func (s *Store) Remove(ctx context.Context, ref string, inUse func(*Template) bool) error {
	var ts []*Template
	if name, _, byHash := strings.Cut(ref, "@"); byHash {
		t, err := s.Resolve(ref)
		if err != nil {
			return err
		}
		ts = []*Template{t}
	} else {
		if name == "" || name == "default" {
			name = DefaultName
		}
		if !nameRE.MatchString(name) {
			return fmt.Errorf("template: remove %q: bad name: %w", ref, desktop.ErrInvalid)
		}
		var err error
		if ts, err = s.builds(name); err != nil {
			return err
		}
		if len(ts) == 0 {
			return fmt.Errorf("template: remove %s: not built: %w", ref, desktop.ErrNotFound)
		}
	}
	if inUse != nil {
		for _, t := range ts {
			if inUse(t) {
				return fmt.Errorf("template: remove %s: %s is in use: %w", ref, t.Ref(), desktop.ErrConflict)
			}
		}
	}
	for _, t := range ts {
		if err := s.removeBuild(ctx, t.Name, t.Hash); err != nil {
			return err
		}
		s.log.Info("template removed", "template", t.Ref())
	}
	return nil
}

// removeBuild moves a build out of sight atomically, under its build lock,
// then deletes it.
func (s *Store) removeBuild(ctx context.Context, name, hash string) error {
	unlock, err := s.lock(ctx, name, hash, nil)
	if err != nil {
		return err
	}
	defer unlock()
	trash, err := os.MkdirTemp(s.nameDir(name), ".trash-")
	if err != nil {
		return fmt.Errorf("template: remove %s@%s: %w", name, hash[:12], err)
	}
	defer os.RemoveAll(trash)
	if err := os.Rename(s.buildDir(name, hash), filepath.Join(trash, hash)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("template: remove %s@%s: %w", name, hash[:12], err)
	}
	return nil
}

// lock takes the build lock of name/hash, waiting for whoever holds it
// (another goroutine or process) until ctx ends. waiting is called once if
// the lock is held by someone else.
func (s *Store) lock(ctx context.Context, name, hash string, waiting func()) (unlock func(), err error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		unlock, held, err := s.flock(name, hash)
		if err != nil {
			return nil, err
		}
		if !held {
			return unlock, nil
		}
		if waiting != nil {
			waiting()
			waiting = nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("template: wait for the build of %s: %w", name, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// tryLock takes the build lock of name/hash if it is free.
func (s *Store) tryLock(name, hash string) (unlock func(), ok bool) {
	unlock, held, err := s.flock(name, hash)
	if err != nil || held {
		return nil, false
	}
	return unlock, true
}

// flock tries once to take the build lock of name/hash: an flock on a
// file, so the kernel releases it when its holder dies.
func (s *Store) flock(name, hash string) (unlock func(), held bool, err error) {
	if err := os.MkdirAll(s.nameDir(name), 0o755); err != nil {
		return nil, false, fmt.Errorf("template: lock %s: %w", name, err)
	}
	f, err := os.OpenFile(s.lockPath(name, hash), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("template: lock %s: %w", name, err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return func() {
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
			f.Close()
		}, false, nil
	}
	f.Close()
	if errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EINTR) {
		return nil, true, nil
	}
	return nil, false, fmt.Errorf("template: lock %s: %w", name, err)
}
