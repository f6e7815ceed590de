package sandbox_test

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*sandbox.CreateRequest)
		field string // "" when valid
	}{
		{"default", func(r *sandbox.CreateRequest) {}, ""},
		{"bounds", func(r *sandbox.CreateRequest) {
			r.Width, r.Height, r.DPI, r.Timeout = 8192, 64, 500, 24*time.Hour
		}, ""},
		{"versioned template", func(r *sandbox.CreateRequest) { r.Template = "desktop:v2.1" }, ""},
		{"empty template", func(r *sandbox.CreateRequest) { r.Template = "" }, "template"},
		{"template path", func(r *sandbox.CreateRequest) { r.Template = "../etc" }, "template"},
		{"width", func(r *sandbox.CreateRequest) { r.Width = 8193 }, "resolution.width"},
		{"height", func(r *sandbox.CreateRequest) { r.Height = 63 }, "resolution.height"},
		{"dpi", func(r *sandbox.CreateRequest) { r.DPI = 501 }, "dpi"},
		{"short timeout", func(r *sandbox.CreateRequest) { r.Timeout = 999 * time.Millisecond }, "timeout_s"},
		{"long timeout", func(r *sandbox.CreateRequest) { r.Timeout = 24*time.Hour + time.Second }, "timeout_s"},
		{"metadata", func(r *sandbox.CreateRequest) { r.Metadata = map[string]string{"": "x"} }, "metadata"},
		{"metadata utf8", func(r *sandbox.CreateRequest) { r.Metadata = map[string]string{"k": "\xff"} }, "metadata"},
		{"metadata 256 runes", func(r *sandbox.CreateRequest) {
			r.Metadata = map[string]string{strings.Repeat("é", 256): strings.Repeat("ü", 1024)}
		}, ""},
		{"env", func(r *sandbox.CreateRequest) { r.Env = map[string]string{"_A1": "x", "PATH": "/bin"} }, ""},
		{"env digit", func(r *sandbox.CreateRequest) { r.Env = map[string]string{"1A": "x"} }, "env"},
		{"env nul", func(r *sandbox.CreateRequest) { r.Env = map[string]string{"A": "a\x00b"} }, "env"},
		{"env display", func(r *sandbox.CreateRequest) { r.Env = map[string]string{"DISPLAY": ":1"} }, "env"},
		{"env display external", func(r *sandbox.CreateRequest) {
			r.DisplayMode, r.Env = sandbox.DisplayExternal, map[string]string{"DISPLAY": ":1.0"}
		}, ""},
		{"env bad display external", func(r *sandbox.CreateRequest) {
			r.DisplayMode, r.Env = sandbox.DisplayExternal, map[string]string{"DISPLAY": "host:0"}
		}, "env"},
		{"env cubicle external", func(r *sandbox.CreateRequest) {
			r.DisplayMode, r.Env = sandbox.DisplayExternal, map[string]string{"CUBICLE_X": "1"}
		}, "env"},
		{"display mode", func(r *sandbox.CreateRequest) { r.DisplayMode = "vnc" }, "display_mode"},
		{"cpus nan", func(r *sandbox.CreateRequest) { r.Limits.CPUs = math.NaN() }, "limits.cpus"},
		{"cpus tiny", func(r *sandbox.CreateRequest) { r.Limits.CPUs = 0.01 }, "limits.cpus"},
		{"memory", func(r *sandbox.CreateRequest) { r.Limits.MemoryMB = 64 }, "limits.memory_mb"},
		{"disk", func(r *sandbox.CreateRequest) { r.Limits.DiskMB = -1 }, "limits.disk_mb"},
		{"pids", func(r *sandbox.CreateRequest) { r.Limits.Pids = 10 }, "limits.pids"},
		{"prefix", func(r *sandbox.CreateRequest) { r.Network.AllowOut = []netip.Prefix{{}} }, "network.allow_out[0]"},
		{"too many prefixes", func(r *sandbox.CreateRequest) {
			r.Network.DenyOut = make([]netip.Prefix, sandbox.MaxNetworkPrefixes+1)
		}, "network.deny_out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sandbox.DefaultCreateRequest()
			tt.mod(&r)
			err := r.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var de *desktop.Error
			if !errors.As(err, &de) || de.Code != desktop.CodeInvalid || de.Field != tt.field {
				t.Fatalf("Validate = %v, want invalid_argument on %q", err, tt.field)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := sandbox.NewID()
		if !sandbox.ValidID(id) || seen[id] {
			t.Fatalf("NewID() = %q: invalid or repeated", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "ABCDEFGHIJ0123456789", "abcdefghij012345678", "abcdefghij0123456789a", "abcdefghij012345678-"} {
		if sandbox.ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := sandbox.Cursor{Created: time.Date(2030, 5, 6, 7, 8, 9, 123, time.UTC), ID: "abcdefghij0123456789"}
	got, err := sandbox.ParseCursor(c.String())
	if err != nil || !got.Created.Equal(c.Created) || got.ID != c.ID {
		t.Fatalf("ParseCursor(String()) = %+v, %v; want %+v", got, err, c)
	}
	if z, err := sandbox.ParseCursor(""); err != nil || !z.IsZero() {
		t.Errorf("ParseCursor(\"\") = %+v, %v; want the zero cursor", z, err)
	}
	for _, tt := range []struct {
		created time.Time
		id      string
		skips   bool
	}{
		{c.Created.Add(-1), "zzzzzzzzzzzzzzzzzzzz", true},
		{c.Created, "abcdefghij0123456788", true},
		{c.Created, c.ID, true},
		{c.Created, "abcdefghij012345678a", false},
		{c.Created.Add(1), "00000000000000000000", false},
	} {
		if got := c.Skips(tt.created, tt.id); got != tt.skips {
			t.Errorf("Skips(%v, %s) = %v, want %v", tt.created, tt.id, got, tt.skips)
		}
	}
}
