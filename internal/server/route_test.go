package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
	"github.com/cubicle-dev/cubicle/internal/server"
)

func TestParseSandboxHost(t *testing.T) {
	const id = "abcdefghij0123456789"
	tests := []struct {
		host   string
		port   int
		id     string
		ok     bool
		domain string
	}{
		{"49983-" + id + ".sandbox.test", 49983, id, true, ""},
		{"49983-" + id + ".sandbox.test:8080", 49983, id, true, ""},
		{"6080-" + strings.ToUpper(id) + ".SANDBOX.test.", 6080, id, true, ""},
		{"1-" + id + ".sandbox.test", 1, id, true, ""},
		{"65535-" + id + ".sandbox.test", 65535, id, true, ""},
		{"65536-" + id + ".sandbox.test", 0, "", false, ""},
		{"0-" + id + ".sandbox.test", 0, "", false, ""},
		{"080-" + id + ".sandbox.test", 0, "", false, ""},
		{"+80-" + id + ".sandbox.test", 0, "", false, ""},
		{"-" + id + ".sandbox.test", 0, "", false, ""},
		{"80-" + id[:19] + ".sandbox.test", 0, "", false, ""},
		{"80-" + id + "x.sandbox.test", 0, "", false, ""},
		{"80-" + id + ".evil.sandbox.test", 0, "", false, ""},
		{"80-" + id + ".sandbox.test.evil.com", 0, "", false, ""},
		{"80-" + id + "sandbox.test", 0, "", false, ""},
		{"sandbox.test", 0, "", false, ""},
		{"127.0.0.1:8080", 0, "", false, ""},
		{"[::1]:8080", 0, "", false, ""},
		{"80-" + id + ".sandbox.test", 0, "", false, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			domain := "sandbox.test"
			if tt.domain == "-" {
				domain = ""
			}
			port, id, ok := server.ParseSandboxHost(tt.host, domain)
			if port != tt.port || id != tt.id || ok != tt.ok {
				t.Errorf("ParseSandboxHost(%q) = %d, %q, %v; want %d, %q, %v", tt.host, port, id, ok, tt.port, tt.id, tt.ok)
			}
		})
	}
}

func FuzzParseSandboxHost(f *testing.F) {
	f.Add("49983-abcdefghij0123456789.sandbox.test:443")
	f.Add("1-abcdefghij0123456789.SANDBOX.TEST.")
	f.Add("99999-x.sandbox.test")
	f.Fuzz(func(t *testing.T, host string) {
		port, id, ok := server.ParseSandboxHost(host, "sandbox.test")
		if !ok {
			if port != 0 || id != "" {
				t.Fatalf("ParseSandboxHost(%q) = %d, %q, false: want zero values", host, port, id)
			}
			return
		}
		if port < 1 || port > 65535 || !sandbox.ValidID(id) {
			t.Fatalf("ParseSandboxHost(%q) = %d, %q: out of range", host, port, id)
		}
		canon := fmt.Sprintf("%d-%s.sandbox.test", port, id)
		if p2, id2, ok2 := server.ParseSandboxHost(canon, "sandbox.test"); p2 != port || id2 != id || !ok2 {
			t.Fatalf("canonical form %q parses to %d %q %v", canon, p2, id2, ok2)
		}
		if !strings.Contains(strings.ToLower(host), id) {
			t.Fatalf("ParseSandboxHost(%q) found id %q that is not in it", host, id)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  server.Config
		ok   bool
	}{
		{"minimal", server.Config{StateDir: dir}, true},
		{"no state dir", server.Config{}, false},
		{"bad listen", server.Config{StateDir: dir, Listen: "8080"}, false},
		{"domain", server.Config{StateDir: dir, Domain: "Sandbox.Example.com."}, true},
		{"bad domain", server.Config{StateDir: dir, Domain: "exa mple.com"}, false},
		{"empty label", server.Config{StateDir: dir, Domain: "a..b"}, false},
		{"cert without key", server.Config{StateDir: dir, TLSCert: "c.pem"}, false},
		{"negative timeout", server.Config{StateDir: dir, ShutdownTimeout: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			err := cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if err == nil && (cfg.Listen != "127.0.0.1:8080" || cfg.Agent == "" || cfg.ShutdownTimeout <= 0) {
				t.Errorf("defaults not filled in: %+v", cfg)
			}
			if tt.name == "domain" && cfg.Domain != "sandbox.example.com" {
				t.Errorf("domain %q, want it lower-case without the final dot", cfg.Domain)
			}
		})
	}
}
