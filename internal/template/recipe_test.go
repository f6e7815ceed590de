package template

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/desktop"
)

func TestParseValid(t *testing.T) {
	in := `{
		"name": "tiny",
		"suite": "bookworm",
		"packages": ["busybox", "ca-certificates", "busybox", "libstdc++6", "g++-12"],
		"steps": [
			{"run": "echo hi > /root/hi"},
			{"write": {"path": "/etc/x", "mode": "640", "content": "x\n"}},
			{"write": {"path": "/etc/y", "content": ""}}
		],
		"user": {"name": "user", "uid": 1000, "sudo": true},
		"env": {"LANG": "C.UTF-8"}
	}`
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Recipe{
		Name:     "tiny",
		Suite:    "bookworm",
		Mirror:   DefaultMirror,
		Variant:  DefaultVariant,
		Packages: []string{"busybox", "ca-certificates", "g++-12", "libstdc++6"},
		Steps: []Step{
			{Run: "echo hi > /root/hi"},
			{Write: &WriteFile{Path: "/etc/x", Mode: "0640", Content: "x\n"}},
			{Write: &WriteFile{Path: "/etc/y", Mode: "0644", Content: ""}},
		},
		User: &User{Name: "user", UID: 1000, Sudo: true},
		Env:  map[string]string{"LANG": "C.UTF-8"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if got, want := got.debootstrapPackages(), []string{"busybox", "ca-certificates", "g++-12", "libstdc++6", "sudo"}; !slices.Equal(got, want) {
		t.Errorf("debootstrapPackages = %v, want %v", got, want)
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		field string // the FieldError's field; "" for errors that are not about one field
	}{
		{"empty name", `{"name":"","suite":"bookworm"}`, "name"},
		{"upper-case name", `{"name":"Desk","suite":"bookworm"}`, "name"},
		{"name with slash", `{"name":"a/b","suite":"bookworm"}`, "name"},
		{"name starting with dash", `{"name":"-a","suite":"bookworm"}`, "name"},
		{"name too long", `{"name":"` + strings.Repeat("a", 64) + `","suite":"bookworm"}`, "name"},
		{"reserved name", `{"name":"default","suite":"bookworm"}`, "name"},
		{"unknown suite", `{"name":"a","suite":"wheezy"}`, "suite"},
		{"missing suite", `{"name":"a"}`, "suite"},
		{"ftp mirror", `{"name":"a","suite":"bookworm","mirror":"ftp://x/debian"}`, "mirror"},
		{"mirror without host", `{"name":"a","suite":"bookworm","mirror":"http:///debian"}`, "mirror"},
		{"mirror with comma", `{"name":"a","suite":"bookworm","mirror":"http://x/a,b"}`, "mirror"},
		{"mirror with credentials", `{"name":"a","suite":"bookworm","mirror":"http://u:p@x/debian"}`, "mirror"},
		{"unknown variant", `{"name":"a","suite":"bookworm","variant":"fakechroot"}`, "variant"},
		{"upper-case package", `{"name":"a","suite":"bookworm","packages":["Xvfb"]}`, "packages[0]"},
		{"one-letter package", `{"name":"a","suite":"bookworm","packages":["ok-1","x"]}`, "packages[1]"},
		{"package with space", `{"name":"a","suite":"bookworm","packages":["a b"]}`, "packages[0]"},
		{"package with option", `{"name":"a","suite":"bookworm","packages":["--foo"]}`, "packages[0]"},
		{"package with comma", `{"name":"a","suite":"bookworm","packages":["a,b"]}`, "packages[0]"},
		{"package with arch", `{"name":"a","suite":"bookworm","packages":["libc6:i386"]}`, "packages[0]"},
		{"empty step", `{"name":"a","suite":"bookworm","steps":[{}]}`, "steps[0]"},
		{"blank run", `{"name":"a","suite":"bookworm","steps":[{"run":"  "}]}`, "steps[0].run"},
		{"run and write", `{"name":"a","suite":"bookworm","steps":[{"run":"x","write":{"path":"/a","content":""}}]}`, "steps[0]"},
		{"relative write", `{"name":"a","suite":"bookworm","steps":[{"run":"x"},{"write":{"path":"etc/x","content":""}}]}`, "steps[1].write.path"},
		{"write with dot-dot", `{"name":"a","suite":"bookworm","steps":[{"write":{"path":"/etc/../x","content":""}}]}`, "steps[0].write.path"},
		{"write with trailing slash", `{"name":"a","suite":"bookworm","steps":[{"write":{"path":"/etc/x/","content":""}}]}`, "steps[0].write.path"},
		{"write to root", `{"name":"a","suite":"bookworm","steps":[{"write":{"path":"/","content":""}}]}`, "steps[0].write.path"},
		{"write without path", `{"name":"a","suite":"bookworm","steps":[{"write":{"content":"x"}}]}`, "steps[0].write.path"},
		{"bad mode", `{"name":"a","suite":"bookworm","steps":[{"write":{"path":"/x","mode":"0800","content":""}}]}`, "steps[0].write.mode"},
		{"symbolic mode", `{"name":"a","suite":"bookworm","steps":[{"write":{"path":"/x","mode":"u+x","content":""}}]}`, "steps[0].write.mode"},
		{"uid 0", `{"name":"a","suite":"bookworm","user":{"name":"u","uid":0}}`, "user.uid"},
		{"uid too high", `{"name":"a","suite":"bookworm","user":{"name":"u","uid":60001}}`, "user.uid"},
		{"user root", `{"name":"a","suite":"bookworm","user":{"name":"root","uid":1000}}`, "user.name"},
		{"user with space", `{"name":"a","suite":"bookworm","user":{"name":"a b","uid":1000}}`, "user.name"},
		{"bad env key", `{"name":"a","suite":"bookworm","env":{"A-B":"x"}}`, "env"},
		{"unknown base", `{"name":"a","from":"server"}`, "from"},
		{"unknown field", `{"name":"a","suite":"bookworm","packagez":[]}`, ""},
		{"wrong type", `{"name":"a","suite":"bookworm","packages":"xvfb"}`, ""},
		{"trailing data", `{"name":"a","suite":"bookworm"} {}`, ""},
		{"not json", `name: a`, ""},
		{"empty", ``, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(strings.NewReader(tc.json))
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", r)
			}
			if !errors.Is(err, desktop.ErrInvalid) {
				t.Errorf("error %q does not match desktop.ErrInvalid", err)
			}
			var fe *FieldError
			if got := errors.As(err, &fe); got != (tc.field != "") {
				t.Fatalf("error %q: is a FieldError = %v, want %v", err, got, tc.field != "")
			}
			if fe != nil && fe.Field != tc.field {
				t.Errorf("error %q names field %q, want %q", err, fe.Field, tc.field)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	big := `{"name":"a","suite":"bookworm","steps":[{"run":"` + strings.Repeat("x", MaxRecipeBytes) + `"}]}`
	if _, err := Parse(strings.NewReader(big)); !errors.Is(err, desktop.ErrInvalid) {
		t.Errorf("Parse of a %d-byte recipe = %v, want an error matching ErrInvalid", len(big), err)
	}
}

func TestFromExtendsBuiltin(t *testing.T) {
	base, err := Builtin("desktop")
	if err != nil {
		t.Fatal(err)
	}
	in := `{"name":"mine","from":"desktop","packages":["python3","xvfb"],
		"steps":[{"run":"pip --version || true"}],"env":{"LANG":"en_US.UTF-8","EDITOR":"nano"}}`
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got.Name != "mine" || got.From != "" {
		t.Errorf("name, from = %q, %q; want mine and empty (applied)", got.Name, got.From)
	}
	if got.Suite != base.Suite || got.Mirror != base.Mirror || got.Variant != base.Variant {
		t.Errorf("suite/mirror/variant = %s %s %s, want the base's %s %s %s", got.Suite, got.Mirror, got.Variant, base.Suite, base.Mirror, base.Variant)
	}
	wantPkgs := sortedUnique(append(slices.Clone(base.Packages), "python3"))
	if diff := cmp.Diff(wantPkgs, got.Packages); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	wantSteps := append(slices.Clone(base.Steps), Step{Run: "pip --version || true"})
	if diff := cmp.Diff(wantSteps, got.Steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(base.User, got.User); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	if got.Env["LANG"] != "en_US.UTF-8" || got.Env["EDITOR"] != "nano" || got.Env["XFCE_PANEL_MIGRATE_DEFAULT"] != "1" {
		t.Errorf("env = %v, want the base's with LANG overridden and EDITOR added", got.Env)
	}
	// The base is not changed by extending it.
	again, err := Builtin("desktop")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(base, again); diff != "" {
		t.Errorf("built-in changed by extending it (-before +after):\n%s", diff)
	}
}

func TestFromOverridesUser(t *testing.T) {
	got, err := Parse(strings.NewReader(`{"name":"mine","from":"desktop","suite":"trixie","user":{"name":"agent","uid":2000}}`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&User{Name: "agent", UID: 2000}, got.User); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	if got.Suite != "trixie" {
		t.Errorf("suite = %q, want trixie", got.Suite)
	}
}

func TestExpandIsIdempotent(t *testing.T) {
	r, err := Parse(strings.NewReader(`{"name":"mine","from":"desktop","steps":[{"run":"true"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	again, err := Expand(r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, again); diff != "" {
		t.Errorf("Expand of an expanded recipe changed it (-before +after):\n%s", diff)
	}
}

func TestBuiltinDesktop(t *testing.T) {
	if got := Builtins(); !slices.Contains(got, DefaultName) {
		t.Fatalf("Builtins() = %v, want it to contain %q", got, DefaultName)
	}
	r, err := Builtin(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	// What the E2B desktop SDK runs in a sandbox needs these.
	for _, p := range []string{"xvfb", "x11-utils", "x11-xserver-utils", "xfce4-session", "xfwm4", "xfdesktop4",
		"xfce4-panel", "dbus-x11", "xdotool", "scrot", "x11vnc", "novnc", "websockify", "net-tools", "procps",
		"xdg-utils", "libgtk-3-bin", "firefox-esr", "xfce4-terminal", "sudo"} {
		if !slices.Contains(r.Packages, p) {
			t.Errorf("desktop recipe lacks package %s", p)
		}
	}
	if diff := cmp.Diff(&User{Name: "user", UID: 1000, Sudo: true}, r.User); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	if r.Suite != "bookworm" || r.Variant != "minbase" {
		t.Errorf("suite, variant = %s, %s; want bookworm, minbase", r.Suite, r.Variant)
	}
	if _, err := Builtin("nope"); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("Builtin(nope) = %v, want ErrNotFound", err)
	}
}

// The recipe file in the repository is the one the binary carries.
func TestBuiltinMatchesRepositoryFile(t *testing.T) {
	for _, name := range Builtins() {
		embedded, err := BuiltinJSON(name)
		if err != nil {
			t.Fatal(err)
		}
		onDisk, err := os.ReadFile(filepath.Join("..", "..", "templates", name+".json"))
		if err != nil {
			t.Fatalf("templates/%s.json: %v", name, err)
		}
		if !bytes.Equal(embedded, onDisk) {
			t.Errorf("templates/%s.json differs from internal/template/recipes/%s.json; copy one over the other", name, name)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.json")
	if err := os.WriteFile(p, []byte(`{"name":"x","suite":"bookworm","packages":["BAD"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if !errors.Is(err, desktop.ErrInvalid) || !strings.Contains(err.Error(), p) {
		t.Errorf("Load of a bad recipe = %v, want ErrInvalid naming the file", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("Load of a missing file = %v, want ErrNotFound", err)
	}
	r, err := Load(filepath.Join("..", "..", "templates", "desktop.json"))
	if err != nil {
		t.Fatalf("Load(templates/desktop.json): %v", err)
	}
	if r.Name != "desktop" {
		t.Errorf("name = %q, want desktop", r.Name)
	}
}
