package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Recipe says how to build a template. Parse and Load return recipes that
// are validated and have their "from" base applied.
type Recipe struct {
	// Name names the template: 1 to 63 characters of [a-z0-9-], starting
	// with a letter or digit.
	Name string `json:"name"`
	// From names a built-in recipe this one extends: the base's packages
	// and steps come first, then this recipe's. Empty fields (suite,
	// mirror, variant, user) are taken from the base; env keys of this
	// recipe override the base's. It is empty once applied.
	From string `json:"from,omitempty"`
	// Suite is the Debian release: bullseye, bookworm, trixie or sid.
	Suite string `json:"suite"`
	// Mirror is the Debian mirror debootstrap and apt download from. It
	// defaults to DefaultMirror.
	Mirror string `json:"mirror"`
	// Variant is the debootstrap variant: minbase (the default) or buildd.
	Variant string `json:"variant"`
	// Packages are installed by debootstrap on top of the variant's base,
	// with their dependencies (not their recommendations). debootstrap
	// does not resolve virtual packages: when a dependency is one (as
	// python3-cffi-backend-api-min), name the package providing it (as
	// python3-cffi-backend), or install the package in a step with
	// apt-get, which the steps can use until the build ends.
	Packages []string `json:"packages"`
	// Steps run in order in the new root, after the user is created.
	Steps []Step `json:"steps"`
	// User is the desktop user, created before the steps run. Nil means
	// no user: sandboxes of this template run as root.
	User *User `json:"user,omitempty"`
	// Env is the environment sandboxes of this template start with. It is
	// not applied to the steps, which run with a fixed clean environment.
	Env map[string]string `json:"env,omitempty"`
}

// Step is one thing done in the new root: exactly one of Run and Write.
type Step struct {
	// Run is a shell command run as root in the new root with
	// /bin/sh -e -c (so a script stops at its first failing command).
	Run string `json:"run,omitempty"`
	// Write writes a file in the new root.
	Write *WriteFile `json:"write,omitempty"`
}

// WriteFile is a file a step writes, as root. Parent directories are
// created (mode 0755). Symbolic links resolve inside the new root.
type WriteFile struct {
	// Path is absolute and clean: no "." or ".." elements, no trailing
	// slash.
	Path string `json:"path"`
	// Mode is the permission bits in octal, as "0644" (the default).
	Mode    string `json:"mode,omitempty"`
	Content string `json:"content"`
}

// User is the account sandboxes run their desktop as. Its home is
// /home/<name> and its shell /bin/bash; its group has its name and the same
// id.
type User struct {
	Name string `json:"name"`
	UID  int    `json:"uid"`
	// Sudo grants passwordless sudo through /etc/sudoers.d/<name>; the
	// sudo package is then installed too.
	Sudo bool `json:"sudo,omitempty"`
}

// Defaults filled in when a recipe leaves a field empty.
const (
	DefaultMirror  = "http://deb.debian.org/debian"
	DefaultVariant = "minbase"
	DefaultMode    = "0644"
)

// MaxRecipeBytes bounds the JSON Parse reads.
const MaxRecipeBytes = 1 << 20

// knownSuite reports whether suite is a Debian release a recipe may name.
func knownSuite(suite string) bool {
	switch suite {
	case "bullseye", "bookworm", "trixie", "sid":
		return true
	}
	return false
}

func knownVariant(v string) bool { return v == "minbase" || v == "buildd" }

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	envKeyRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	modeRE    = regexp.MustCompile(`^0?[0-7]{3,4}$`)
)

// FieldError is a recipe that is wrong in one field. It matches
// desktop.ErrInvalid.
type FieldError struct {
	// Field is the JSON path of the field, as "packages[3]" or
	// "steps[0].write.path".
	Field  string
	Detail string
}

func (e *FieldError) Error() string {
	return "template: recipe: " + e.Field + ": " + e.Detail
}

// Unwrap returns desktop.ErrInvalid.
func (e *FieldError) Unwrap() error { return desktop.ErrInvalid }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Detail: fmt.Sprintf(format, args...)}
}

// Load reads and parses the recipe file at path.
func Load(path string) (*Recipe, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("template: load recipe: %w: %w", err, desktop.ErrNotFound)
		}
		return nil, fmt.Errorf("template: load recipe: %w", err)
	}
	defer f.Close()
	r, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Parse reads one JSON recipe from r, applies its "from" base and
// validates it. Unknown fields, trailing data and recipes over
// MaxRecipeBytes are refused. Every error matches desktop.ErrInvalid.
func Parse(r io.Reader) (*Recipe, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRecipeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("template: read recipe: %w", err)
	}
	if len(data) > MaxRecipeBytes {
		return nil, fmt.Errorf("template: recipe is over %d bytes: %w", MaxRecipeBytes, desktop.ErrInvalid)
	}
	var rec Recipe
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("template: recipe: %v: %w", err, desktop.ErrInvalid)
	}
	if dec.More() {
		return nil, fmt.Errorf("template: recipe: data after the recipe object: %w", desktop.ErrInvalid)
	}
	return Expand(&rec)
}

// Expand returns a copy of rec with its "from" base applied (From is then
// empty), defaults filled in, packages sorted and made unique, and
// everything validated.
func Expand(rec *Recipe) (*Recipe, error) {
	if rec == nil {
		return nil, fmt.Errorf("template: recipe: nil: %w", desktop.ErrInvalid)
	}
	if err := rec.validateOwn(); err != nil {
		return nil, err
	}
	out := rec.clone()
	if rec.From != "" {
		base, err := Builtin(rec.From)
		if errors.Is(err, desktop.ErrNotFound) {
			return nil, fieldErr("from", "no built-in recipe %q (have %s)", rec.From, strings.Join(Builtins(), ", "))
		}
		if err != nil {
			return nil, err
		}
		out = merge(base, out)
	}
	out.normalize()
	if err := out.validateComplete(); err != nil {
		return nil, err
	}
	return out, nil
}

// merge applies child on top of base. base is already expanded.
func merge(base, child *Recipe) *Recipe {
	out := base.clone()
	out.Name = child.Name
	out.From = ""
	if child.Suite != "" {
		out.Suite = child.Suite
	}
	if child.Mirror != "" {
		out.Mirror = child.Mirror
	}
	if child.Variant != "" {
		out.Variant = child.Variant
	}
	out.Packages = append(out.Packages, child.Packages...)
	out.Steps = append(out.Steps, child.Steps...)
	if child.User != nil {
		u := *child.User
		out.User = &u
	}
	for k, v := range child.Env {
		if out.Env == nil {
			out.Env = map[string]string{}
		}
		out.Env[k] = v
	}
	return out
}

func (r *Recipe) clone() *Recipe {
	out := *r
	out.Packages = append([]string(nil), r.Packages...)
	out.Steps = make([]Step, len(r.Steps))
	for i, s := range r.Steps {
		out.Steps[i] = s
		if s.Write != nil {
			w := *s.Write
			out.Steps[i].Write = &w
		}
	}
	if r.User != nil {
		u := *r.User
		out.User = &u
	}
	if r.Env != nil {
		out.Env = make(map[string]string, len(r.Env))
		for k, v := range r.Env {
			out.Env[k] = v
		}
	}
	return &out
}

// normalize fills defaults and puts packages in canonical order, so equal
// recipes encode (and hash) equally.
func (r *Recipe) normalize() {
	if r.Mirror == "" {
		r.Mirror = DefaultMirror
	}
	if r.Variant == "" {
		r.Variant = DefaultVariant
	}
	r.Packages = sortedUnique(r.Packages)
	if r.Steps == nil {
		r.Steps = []Step{}
	}
	for _, s := range r.Steps {
		if s.Write == nil {
			continue
		}
		if s.Write.Mode == "" {
			s.Write.Mode = DefaultMode
		}
		m, _ := strconv.ParseUint(s.Write.Mode, 8, 32)
		s.Write.Mode = fmt.Sprintf("%04o", m)
	}
	if len(r.Env) == 0 {
		r.Env = nil
	}
}

// validateOwn checks the fields as written, before a base is applied:
// every field that is present must be well-formed.
func (r *Recipe) validateOwn() error {
	if !nameRE.MatchString(r.Name) {
		return fieldErr("name", "%q is not 1 to 63 characters of [a-z0-9-] starting with a letter or digit", r.Name)
	}
	if r.Name == "default" {
		return fieldErr("name", "\"default\" is reserved: it stands for the %s template", DefaultName)
	}
	if r.Suite != "" && !knownSuite(r.Suite) {
		return fieldErr("suite", "unknown suite %q (want bullseye, bookworm, trixie or sid)", r.Suite)
	}
	if r.Mirror != "" {
		if err := checkMirror(r.Mirror); err != nil {
			return err
		}
	}
	if r.Variant != "" && !knownVariant(r.Variant) {
		return fieldErr("variant", "unknown variant %q (want minbase or buildd)", r.Variant)
	}
	if len(r.Packages) > 2000 {
		return fieldErr("packages", "%d packages, at most 2000", len(r.Packages))
	}
	for i, p := range r.Packages {
		if !packageRE.MatchString(p) {
			return fieldErr(fmt.Sprintf("packages[%d]", i), "%q is not a Debian package name (lower case letters, digits, + - and ., at least 2 characters, starting with a letter or digit)", p)
		}
	}
	for i, s := range r.Steps {
		if err := s.validate(fmt.Sprintf("steps[%d]", i)); err != nil {
			return err
		}
	}
	if r.User != nil {
		if err := r.User.validate(); err != nil {
			return err
		}
	}
	for k, v := range r.Env {
		if !envKeyRE.MatchString(k) {
			return fieldErr("env", "%q is not a variable name ([A-Za-z_][A-Za-z0-9_]*)", k)
		}
		if strings.ContainsRune(v, 0) {
			return fieldErr("env."+k, "value contains a NUL byte")
		}
	}
	return nil
}

// validateComplete checks an expanded recipe: what was optional before the
// base was applied is required now.
func (r *Recipe) validateComplete() error {
	if err := r.validateOwn(); err != nil {
		return err
	}
	if r.From != "" {
		return fieldErr("from", "not applied")
	}
	if r.Suite == "" {
		return fieldErr("suite", "missing (want bullseye, bookworm, trixie or sid)")
	}
	return nil
}

func checkMirror(m string) error {
	u, err := url.Parse(m)
	if err != nil {
		return fieldErr("mirror", "%q is not a URL", m)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fieldErr("mirror", "%q has no host", m)
		}
	case "file":
		if !path.IsAbs(u.Path) {
			return fieldErr("mirror", "%q has no absolute path", m)
		}
	default:
		return fieldErr("mirror", "%q is not an http, https or file URL", m)
	}
	if strings.ContainsAny(m, " \t\n,") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fieldErr("mirror", "%q must be a plain URL without spaces, commas, credentials, query or fragment", m)
	}
	return nil
}

func (s Step) validate(field string) error {
	switch {
	case s.Run != "" && s.Write != nil:
		return fieldErr(field, "has both run and write, want one")
	case s.Run == "" && s.Write == nil:
		return fieldErr(field, "has neither run nor write")
	case s.Write != nil:
		return s.Write.validate(field + ".write")
	}
	if strings.ContainsRune(s.Run, 0) {
		return fieldErr(field+".run", "contains a NUL byte")
	}
	if strings.TrimSpace(s.Run) == "" {
		return fieldErr(field+".run", "is blank")
	}
	return nil
}

func (w *WriteFile) validate(field string) error {
	p := w.Path
	switch {
	case p == "":
		return fieldErr(field+".path", "missing")
	case !path.IsAbs(p):
		return fieldErr(field+".path", "%q is not absolute", p)
	case p == "/":
		return fieldErr(field+".path", "is the root directory")
	case path.Clean(p) != p:
		return fieldErr(field+".path", "%q is not clean (want %q)", p, path.Clean(p))
	case strings.ContainsRune(p, 0):
		return fieldErr(field+".path", "contains a NUL byte")
	}
	if w.Mode != "" && !modeRE.MatchString(w.Mode) {
		return fieldErr(field+".mode", "%q is not octal permission bits like \"0644\"", w.Mode)
	}
	return nil
}

func (u *User) validate() error {
	if !userRE.MatchString(u.Name) || u.Name == "root" {
		return fieldErr("user.name", "%q is not a user name ([a-z_][a-z0-9_-]*, at most 32 characters, not root)", u.Name)
	}
	if u.UID < 1 || u.UID > 60000 {
		return fieldErr("user.uid", "%d is not in 1..60000", u.UID)
	}
	return nil
}

// debootstrapPackages is what debootstrap is asked to include: the
// recipe's packages, and sudo when the user gets sudo.
func (r *Recipe) debootstrapPackages() []string {
	pkgs := append([]string(nil), r.Packages...)
	if r.User != nil && r.User.Sudo {
		pkgs = append(pkgs, "sudo")
	}
	return sortedUnique(pkgs)
}

func sortedUnique(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}
