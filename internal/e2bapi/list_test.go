package e2bapi

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sdkMetadata encodes a metadata filter as the JS SDK puts it on the wire:
// encodeURIComponent on each key and value, URLSearchParams, and the query
// encoding of the whole.
func sdkMetadata(md map[string]string) string {
	var pairs []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range md {
			if !yield(k) {
				return
			}
		}
	}) {
		pairs = append(pairs, url.QueryEscape(url.QueryEscape(k))+"="+url.QueryEscape(url.QueryEscape(md[k])))
	}
	return "metadata=" + url.QueryEscape(strings.Join(pairs, "&"))
}

func TestParseMetadata(t *testing.T) {
	tests := []struct {
		name  string
		query string // as on the wire
		want  map[string]string
		bad   bool
	}{
		// Captured from e2b@2.51.0 for {a: "b c", "k&": "v="}.
		{"captured", "metadata=a%3Db%252520c%26k%252526%3Dv%25253D", map[string]string{"a": "b c", "k&": "v="}, false},
		{"one pair", "metadata=" + url.QueryEscape("user=alice"), map[string]string{"user": "alice"}, false},
		{"sdk encoding", sdkMetadata(map[string]string{"x/y": "ü=1&2", "e": ""}), map[string]string{"x/y": "ü=1&2", "e": ""}, false},
		{"no equals", "metadata=" + url.QueryEscape("user"), nil, true},
		{"two equals", "metadata=" + url.QueryEscape("a=b=c"), nil, true},
		{"empty key", "metadata=" + url.QueryEscape("=v"), nil, true},
		{"bad escape", "metadata=" + url.QueryEscape("a=%zz"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseMetadata(v.Get("metadata"))
			if tt.bad {
				if err == nil {
					t.Errorf("ParseMetadata(%q) = %v, want an error", v.Get("metadata"), got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMetadata(%q): %v", v.Get("metadata"), err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseMetadata (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add("a%3Db%2520c%26k%2526%3Dv%253D")
	f.Add("a=b&c=d")
	f.Add("%")
	f.Fuzz(func(t *testing.T, raw string) {
		md, err := ParseMetadata(raw)
		if err != nil {
			return
		}
		for k := range md {
			if k == "" {
				t.Errorf("ParseMetadata(%q) has an empty key", raw)
			}
		}
	})
}

func TestParseListQueryRejects(t *testing.T) {
	for _, q := range []string{
		"state=killed", "state=running,nope", "order=up", "limit=0", "limit=101", "limit=x",
		"startedAfter=yesterday", "nextToken=garbage", "metadata=" + url.QueryEscape("novalue"),
	} {
		v, _ := url.ParseQuery(q)
		if _, err := ParseListQuery(v); err == nil {
			t.Errorf("ParseListQuery(%s) succeeded, want an error", q)
		}
	}
}

// ids lists the sandboxIDs of a list answer.
func ids(t *testing.T, body []byte) []string {
	t.Helper()
	var items []ListedSandbox
	if err := json.Unmarshal(body, &items); err != nil {
		t.Fatalf("list body %s: %v", body, err)
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.SandboxID
	}
	return out
}

func TestList(t *testing.T) {
	h := newHarness(t)
	var made []string // oldest first
	for _, md := range []string{`{"team":"a","n":"1"}`, `{"team":"b","n":"2"}`, `{"team":"a","n":"3"}`} {
		made = append(made, h.create(`{"templateID":"desktop","metadata":`+md+`}`).SandboxID)
	}
	other := h.create(`{"templateID":"other"}`).SandboxID
	if r := h.do("POST", "/sandboxes/"+made[1]+"/pause", ``); r.status != 204 {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	newest := []string{other, made[2], made[1], made[0]}

	r := h.do("GET", "/v2/sandboxes", "")
	if r.status != 200 || r.header.Get(HeaderNextToken) != "" {
		t.Fatalf("list = %d next %q %s; want 200 without a next token", r.status, r.header.Get(HeaderNextToken), r.body)
	}
	var items []map[string]any
	json.Unmarshal(r.body, &items)
	golden(t, "listed", mustJSON(t, items[len(items)-1]))

	tests := []struct {
		query string
		want  []string
	}{
		{"", newest},
		{"order=asc", []string{made[0], made[1], made[2], other}},
		{"state=running", []string{other, made[2], made[0]}},
		{"state=paused", []string{made[1]}},
		{"state=running,paused", newest},
		{sdkMetadata(map[string]string{"team": "a"}), []string{made[2], made[0]}},
		{sdkMetadata(map[string]string{"team": "a", "n": "1"}), []string{made[0]}},
		{sdkMetadata(map[string]string{"team": "c"}), []string{}},
		{"template=other", []string{other}},
		{"template=base", []string{made[2], made[1], made[0]}},
		{"startedAfter=2000-01-01T00:00:00Z", newest},
		{"startedAfter=2999-01-01T00:00:00.000Z", []string{}},
		{"unknownParam=1", newest},
	}
	for _, tt := range tests {
		r := h.do("GET", "/v2/sandboxes?"+tt.query, "")
		if r.status != 200 {
			t.Errorf("list ?%s = %d %s", tt.query, r.status, r.body)
			continue
		}
		if got := ids(t, r.body); !slices.Equal(got, tt.want) {
			t.Errorf("list ?%s = %q, want %q", tt.query, got, tt.want)
		}
	}

	// Pages of one, in both orders, follow X-Next-Token to the end.
	for _, order := range []string{"desc", "asc"} {
		want := newest
		if order == "asc" {
			want = slices.Clone(newest)
			slices.Reverse(want)
		}
		var got []string
		token := ""
		for range 10 {
			q := url.Values{"limit": {"1"}, "order": {order}}
			if token != "" {
				q.Set("nextToken", token)
			}
			r := h.do("GET", "/v2/sandboxes?"+q.Encode(), "")
			if r.status != 200 {
				t.Fatalf("page: %d %s", r.status, r.body)
			}
			got = append(got, ids(t, r.body)...)
			if token = r.header.Get(HeaderNextToken); token == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages of one in %s order = %q, want %q", order, got, want)
		}
	}

	wantError(t, "list ?state=killed", h.do("GET", "/v2/sandboxes?state=killed", ""), 400)
	wantError(t, "list ?nextToken=x", h.do("GET", "/v2/sandboxes?nextToken=x", ""), 400)

	// GET /sandboxes, the list of older SDKs: running ones only.
	r = h.do("GET", "/sandboxes?"+sdkMetadata(map[string]string{"team": "a"}), "")
	if got := ids(t, r.body); r.status != 200 || !slices.Equal(got, []string{made[2], made[0]}) {
		t.Errorf("GET /sandboxes?metadata team=a = %d %q, want %q", r.status, got, []string{made[2], made[0]})
	}

	// Killed sandboxes leave the list.
	h.do("DELETE", "/sandboxes/"+other, "")
	if got := ids(t, h.do("GET", "/v2/sandboxes", "").body); slices.Contains(got, other) {
		t.Errorf("list after kill = %q, still has %s", got, other)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
