package template

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
)

func FuzzParse(f *testing.F) {
	f.Add(`{"name":"tiny","suite":"bookworm","packages":["busybox"],"steps":[{"run":"true"},{"write":{"path":"/etc/x","mode":"600","content":"x"}}],"user":{"name":"user","uid":1000,"sudo":true},"env":{"A":"1"}}`)
	f.Add(`{"name":"mine","from":"desktop","packages":["python3"]}`)
	f.Add(`{"name":"a","suite":"sid","mirror":"file:///srv/mirror","variant":"buildd"}`)
	f.Add(`{"name":"a","suite":"bookworm","steps":[{"write":{"path":"/a/../b","content":""}}]}`)
	f.Add(`[]`)
	if data, err := os.ReadFile(filepath.Join("recipes", "desktop.json")); err == nil {
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := Parse(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, desktop.ErrInvalid) {
				t.Fatalf("Parse error %q does not match ErrInvalid", err)
			}
			return
		}
		// A parsed recipe is complete, hashes, and survives a round trip
		// through JSON with the same hash.
		if r.From != "" || r.Suite == "" || r.Mirror == "" || r.Variant == "" {
			t.Fatalf("parsed recipe is not expanded: %+v", r)
		}
		h, err := r.Hash()
		if err != nil {
			t.Fatalf("Hash of a parsed recipe: %v", err)
		}
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(strings.NewReader(string(data)))
		if err != nil {
			t.Fatalf("Parse of a parsed recipe's JSON: %v\n%s", err, data)
		}
		if h2, _ := again.Hash(); h2 != h {
			t.Fatalf("hash changed over a round trip: %s, then %s", h, h2)
		}
		for _, s := range r.Steps {
			if w := s.Write; w != nil && (!strings.HasPrefix(w.Path, "/") || strings.Contains(w.Path, "/../") || len(w.Mode) != 4) {
				t.Fatalf("write step passed validation: %+v", w)
			}
		}
	})
}

func FuzzDebootstrapParser(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "debootstrap-missing-package.fd3")); err == nil {
		f.Add(string(data))
	}
	f.Add("P: 1 2 SIZEDEBS\nI: UNPACKING\nIA: x\nIF: Unpacking %s...\n")
	f.Add("E: X\nEA: %s\nEF: %s %s %%\n")
	f.Fuzz(func(t *testing.T, in string) {
		p := newDebootstrapParser(func(pr Progress) {
			if pr.Total < 0 || pr.Done < 0 || (pr.Total > 0 && pr.Done > pr.Total) {
				t.Fatalf("report out of range: %+v", pr)
			}
		})
		if err := p.run(strings.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		_ = p.err()
	})
}
