package api

import (
	"errors"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

var cmpQuery = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmpopts.EquateEmpty(),
}

func TestParseListQuery(t *testing.T) {
	cur := sandbox.Cursor{Created: time.Unix(1700000000, 5).UTC(), ID: "abcdefghij0123456789"}
	tests := []struct {
		raw   string
		want  sandbox.ListQuery
		field string // of the error, when one is expected
	}{
		{"", sandbox.ListQuery{}, ""},
		{"state=running", sandbox.ListQuery{States: []sandbox.State{"running"}}, ""},
		{"state=running,paused&state=killed", sandbox.ListQuery{States: []sandbox.State{"running", "paused", "killed"}}, ""},
		{"state=running,%20running", sandbox.ListQuery{States: []sandbox.State{"running"}}, ""},
		{"metadata=user=ada&metadata=task=a%3Db", sandbox.ListQuery{Metadata: map[string]string{"user": "ada", "task": "a=b"}}, ""},
		{"metadata=empty=", sandbox.ListQuery{Metadata: map[string]string{"empty": ""}}, ""},
		{"metadata=k=v&metadata=k=v", sandbox.ListQuery{Metadata: map[string]string{"k": "v"}}, ""},
		{"limit=1", sandbox.ListQuery{Limit: 1}, ""},
		{"limit=100&next=" + cur.String(), sandbox.ListQuery{Limit: 100, After: cur}, ""},
		{"state=", sandbox.ListQuery{}, "state"},
		{"state=running,", sandbox.ListQuery{}, "state"},
		{"state=RUNNING", sandbox.ListQuery{}, "state"},
		{"metadata=novalue", sandbox.ListQuery{}, "metadata"},
		{"metadata==v", sandbox.ListQuery{}, "metadata"},
		{"metadata=k=a&metadata=k=b", sandbox.ListQuery{}, "metadata"},
		{"limit=0", sandbox.ListQuery{}, "limit"},
		{"limit=101", sandbox.ListQuery{}, "limit"},
		{"limit=ten", sandbox.ListQuery{}, "limit"},
		{"limit=1&limit=2", sandbox.ListQuery{}, "limit"},
		{"next=abc", sandbox.ListQuery{}, "next"},
		{"next=", sandbox.ListQuery{}, ""},
		{"page=2", sandbox.ListQuery{}, "page"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			v, err := url.ParseQuery(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseListQuery(v)
			if tt.field != "" {
				var de *desktop.Error
				if !errors.As(err, &de) || de.Code != desktop.CodeInvalid || de.Field != tt.field {
					t.Fatalf("ParseListQuery(%q) error = %v, want invalid_argument on field %q", tt.raw, err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseListQuery(%q): %v", tt.raw, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpQuery); diff != "" {
				t.Errorf("ParseListQuery(%q) (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

// encodeListQuery is the inverse of ParseListQuery.
func encodeListQuery(q sandbox.ListQuery) url.Values {
	v := url.Values{}
	for _, s := range q.States {
		v.Add("state", string(s))
	}
	for _, k := range slices.Sorted(maps.Keys(q.Metadata)) {
		v.Add("metadata", k+"="+q.Metadata[k])
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if !q.After.IsZero() {
		v.Set("next", q.After.String())
	}
	return v
}

func FuzzParseListQuery(f *testing.F) {
	cur := sandbox.Cursor{Created: time.Unix(1700000000, 5).UTC(), ID: "abcdefghij0123456789"}
	for _, s := range []string{
		"", "state=running,paused", "metadata=a=b&metadata=c=d", "limit=5&next=" + cur.String(),
		"state=killed&metadata=x=%3D%3D&limit=100", "next=YzEuMS5hYmNkZWZnaGlqMDEyMzQ1Njc4OQ", "limit=-1", "state=,,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, _ := url.ParseQuery(raw) // what net/http hands the handler
		q, err := ParseListQuery(v)
		if err != nil {
			var de *desktop.Error
			if !errors.As(err, &de) || de.Code != desktop.CodeInvalid || desktop.HTTPStatus(err) != 400 || de.Field == "" {
				t.Fatalf("ParseListQuery(%q) error %#v: want an invalid_argument with a field", raw, err)
			}
			return
		}
		if q.Limit < 0 || q.Limit > sandbox.MaxPage || len(q.Metadata) > sandbox.MaxMetadataKeys {
			t.Fatalf("ParseListQuery(%q) = %+v: out of bounds", raw, q)
		}
		for i, s := range q.States {
			if !s.Valid() || slices.Contains(q.States[:i], s) {
				t.Fatalf("ParseListQuery(%q): state %q invalid or repeated", raw, s)
			}
		}
		again, err := ParseListQuery(encodeListQuery(q))
		if err != nil {
			t.Fatalf("re-parsing %+v: %v", q, err)
		}
		if diff := cmp.Diff(q, again, cmpQuery); diff != "" {
			t.Fatalf("round trip of %q (-first +again):\n%s", raw, diff)
		}
	})
}

func FuzzParseCursor(f *testing.F) {
	f.Add(sandbox.Cursor{Created: time.Unix(1700000000, 5), ID: "abcdefghij0123456789"}.String())
	f.Add("")
	f.Add("YzEuMS5h")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := sandbox.ParseCursor(s)
		if err != nil {
			if desktop.CodeOf(err) != desktop.CodeInvalid {
				t.Fatalf("ParseCursor(%q) error %v, want invalid_argument", s, err)
			}
			return
		}
		if c.String() != s {
			t.Fatalf("ParseCursor(%q).String() = %q: not canonical", s, c.String())
		}
	})
}
