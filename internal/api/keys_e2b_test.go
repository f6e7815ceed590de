package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
)

func TestE2BKeyForm(t *testing.T) {
	keys := NewKeyManager(sandboxtest.NewStore())
	key, err := keys.Create(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	e2b := E2BKey(key)
	if want := E2BKeyPrefix + strings.TrimPrefix(key, KeyPrefix); e2b != want || !strings.HasPrefix(key, KeyPrefix) {
		t.Fatalf("E2BKey(%.8s...) = %.8s..., want the same secret behind %q", key, e2b, E2BKeyPrefix)
	}
	if got := E2BKey(e2b); got != e2b {
		t.Errorf("E2BKey of an E2B key changed it")
	}
	for _, k := range []string{key, e2b} {
		owner, err := keys.Authenticate(t.Context(), k)
		if err != nil || owner != "alice" {
			t.Errorf("Authenticate(%.4s...) = %q, %v; want alice", k, owner, err)
		}
	}
	list, err := keys.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v; want one key", list, err)
	}
	if err := keys.Revoke(t.Context(), list[0].ID); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key, e2b} {
		if _, err := keys.Authenticate(t.Context(), k); !errors.Is(err, desktop.ErrUnauthorized) {
			t.Errorf("Authenticate(%.4s...) after revoke = %v, want unauthorized", k, err)
		}
	}
}

func TestValidKeyForms(t *testing.T) {
	hex40 := strings.Repeat("0a", 20)
	tests := []struct {
		key  string
		want bool
	}{
		{"cbk_" + hex40, true},
		{"e2b_" + hex40, true},
		{"E2B_" + hex40, false},
		{"e2b_" + hex40[:39], false},
		{"e2b_" + strings.ToUpper(hex40), false},
		{"xyz_" + hex40, false},
		{hex40, false},
	}
	for _, tt := range tests {
		if got := ValidKey(tt.key); got != tt.want {
			t.Errorf("ValidKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}
