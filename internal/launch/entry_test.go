package launch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/desktop"
)

func TestArgv(t *testing.T) {
	tests := []struct {
		name string
		exec string
		uris []string
		want []string
	}{
		{"plain", "xfce4-terminal", nil, []string{"xfce4-terminal"}},
		{"url code with uri", "/usr/lib/firefox-esr/firefox-esr %u", []string{"https://example.test/a b"}, []string{"/usr/lib/firefox-esr/firefox-esr", "https://example.test/a b"}},
		{"url code without uri", "/usr/lib/firefox-esr/firefox-esr %u", nil, []string{"/usr/lib/firefox-esr/firefox-esr"}},
		{"file list", "gimp %F", []string{"a.png", "b.png"}, []string{"gimp", "a.png", "b.png"}},
		{"quoted", `sh -c "echo \"hi there\" \$HOME"`, nil, []string{"sh", "-c", `echo "hi there" $HOME`}},
		{"percent", "printf 100%%", nil, []string{"printf", "100%"}},
		{"name and icon", "app --title %c %i", nil, []string{"app", "--title", "App", "--icon", "app-icon"}},
		{"deprecated codes vanish", "app %d %m x", nil, []string{"app", "x"}},
		{"extra spaces", "  app   -x  ", nil, []string{"app", "-x"}},
		{"quoted empty stays", `app ""`, nil, []string{"app", ""}},
		{"code inside word", "app --file=%f", []string{"/tmp/x"}, []string{"app", "--file=/tmp/x"}},
		{"no injection", "app %u", []string{"; rm -rf / #"}, []string{"app", "; rm -rf / #"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Entry{Name: "App", Exec: tt.exec, Icon: "app-icon"}
			got, err := e.Argv(tt.uris)
			if err != nil {
				t.Fatalf("Argv(%q): %v", tt.exec, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Argv(%q) mismatch (-want +got):\n%s", tt.exec, diff)
			}
		})
	}
}

func TestArgvErrors(t *testing.T) {
	for _, exec := range []string{`app "open`, "app %z", "app 50%", `""`, "   "} {
		e := Entry{Exec: exec}
		if _, err := e.Argv(nil); !errors.Is(err, desktop.ErrInvalid) {
			t.Errorf("Argv(%q) error = %v, want ErrInvalid", exec, err)
		}
	}
}

func TestParse(t *testing.T) {
	src := `# comment
[Desktop Entry]
Name=Terminal Emulator
Exec=xfce4-terminal --working-directory=/tmp\sdir
Terminal=false
Icon=utilities-terminal

[Desktop Action New]
Exec=should-not-be-used
`
	e, err := Parse(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{Name: "Terminal Emulator", Exec: "xfce4-terminal --working-directory=/tmp dir", Icon: "utilities-terminal"}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
	if _, err := Parse(strings.NewReader("[Desktop Entry]\nName=x\n")); !errors.Is(err, desktop.ErrInvalid) {
		t.Errorf("Parse without Exec: error = %v, want ErrInvalid", err)
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	apps := filepath.Join(dir, "applications")
	os.MkdirAll(apps, 0o755)
	os.WriteFile(filepath.Join(apps, "demo.desktop"), []byte("[Desktop Entry]\nName=Demo\nExec=demo %u\n"), 0o644)

	for _, name := range []string{"demo", "demo.desktop"} {
		e, err := Find(name, []string{"/nonexistent", dir})
		if err != nil {
			t.Fatalf("Find(%q): %v", name, err)
		}
		if e.Exec != "demo %u" || e.File != filepath.Join(apps, "demo.desktop") {
			t.Errorf("Find(%q) = %+v", name, e)
		}
	}
	if _, err := Find("missing", []string{dir}); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("Find(missing) error = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"../etc/passwd", "a/b", ".hidden", ""} {
		if _, err := Find(bad, []string{dir}); !errors.Is(err, desktop.ErrInvalid) {
			t.Errorf("Find(%q) error = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestDataDirs(t *testing.T) {
	got := DataDirs([]string{"XDG_DATA_DIRS=/a:/b"}, "/home/user")
	want := []string{"/home/user/.local/share", "/a", "/b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DataDirs mismatch (-want +got):\n%s", diff)
	}
}

func FuzzArgv(f *testing.F) {
	for _, s := range []string{"app %u", `sh -c "a \"b\""`, "x %F %i %c", `"`, "%", "a\tb"} {
		f.Add(s, "uri")
	}
	f.Fuzz(func(t *testing.T, exec, uri string) {
		e := Entry{Name: "n", Exec: exec}
		argv, err := e.Argv([]string{uri})
		if err != nil {
			if !errors.Is(err, desktop.ErrInvalid) {
				t.Fatalf("Argv(%q) error %v is not ErrInvalid", exec, err)
			}
			return
		}
		if len(argv) == 0 {
			t.Fatalf("Argv(%q) = empty argv without error", exec)
		}
	})
}
