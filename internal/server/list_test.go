package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
)

// createMany makes n sandboxes for key, a few at a time, with metadata
// i=<n> and mod3=<n%3>, and returns their ids by i.
func createMany(t testing.TB, r *running, key string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				s := r.create(key, map[string]any{"timeout_s": 3600,
					"metadata": map[string]string{"i": fmt.Sprint(i), "mod3": fmt.Sprint(i % 3)}})
				ids[i] = s.ID
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return ids
}

// listAll follows the cursor through every page of query.
func listAll(t testing.TB, r *running, key, query string) (ids []string, pages []int) {
	t.Helper()
	next := ""
	for {
		q := query
		if next != "" {
			q += "&next=" + next
		}
		l, status := r.list(key, q)
		if status != http.StatusOK {
			t.Fatalf("list %q: status %d", q, status)
		}
		pages = append(pages, len(l.Sandboxes))
		var last apitype.Sandbox
		for i, s := range l.Sandboxes {
			if i > 0 && s.StartedAt.Before(last.StartedAt) {
				t.Errorf("list %q: %s started before the one listed ahead of it", q, s.ID)
			}
			if s.AccessToken != "" {
				t.Errorf("list shows the access token of %s", s.ID)
			}
			ids = append(ids, s.ID)
			last = s
		}
		if l.Next == "" {
			return ids, pages
		}
		if len(pages) > 100 {
			t.Fatal("list never ends")
		}
		next = l.Next
	}
}

func TestListFiltersAndPages(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{})
	defer be.Close()
	r := startServer(t, options{dir: t.TempDir(), be: be})
	defer r.stop()
	key := r.key("alice")
	const n = 250
	ids := createMany(t, r, key, n)
	other := r.create(r.key("bob"), map[string]any{"metadata": map[string]string{"mod3": "0"}})

	// Pause every 10th, kill every 25th.
	var paused, killed []string
	for i, id := range ids {
		switch {
		case i%25 == 0:
			if st := r.call(key, "DELETE", "/v1/sandboxes/"+id, nil, nil); st != 204 {
				t.Fatalf("kill: %d", st)
			}
			killed = append(killed, id)
		case i%10 == 0:
			if st := r.call(key, "POST", "/v1/sandboxes/"+id+"/pause", nil, nil); st != 204 {
				t.Fatalf("pause: %d", st)
			}
			paused = append(paused, id)
		}
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	live := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(killed, id) })

	t.Run("all pages", func(t *testing.T) {
		got, pages := listAll(t, r, key, "limit=100")
		if diff := cmp.Diff(sorted(live), sorted(got)); diff != "" {
			t.Errorf("live sandboxes over all pages (-want +got):\n%s", diff)
		}
		if want := []int{100, 100, len(live) - 200}; !slices.Equal(pages, want) {
			t.Errorf("page sizes %v, want %v", pages, want)
		}
	})
	t.Run("small pages", func(t *testing.T) {
		got, pages := listAll(t, r, key, "limit=7&state=running,paused,killed")
		if diff := cmp.Diff(sorted(ids), sorted(got)); diff != "" {
			t.Errorf("every sandbox in pages of 7 (-want +got):\n%s", diff)
		}
		if len(pages) != (n+6)/7 {
			t.Errorf("%d pages, want %d", len(pages), (n+6)/7)
		}
	})
	t.Run("state", func(t *testing.T) {
		got, _ := listAll(t, r, key, "state=paused")
		if diff := cmp.Diff(sorted(paused), sorted(got)); diff != "" {
			t.Errorf("paused (-want +got):\n%s", diff)
		}
		got, _ = listAll(t, r, key, "state=killed")
		if diff := cmp.Diff(sorted(killed), sorted(got)); diff != "" {
			t.Errorf("killed (-want +got):\n%s", diff)
		}
	})
	t.Run("metadata", func(t *testing.T) {
		var want []string
		for i, id := range ids {
			if i%3 == 0 && !slices.Contains(killed, id) {
				want = append(want, id)
			}
		}
		got, _ := listAll(t, r, key, "metadata=mod3=0")
		if diff := cmp.Diff(sorted(want), sorted(got)); diff != "" {
			t.Errorf("mod3=0 (-want +got):\n%s", diff)
		}
		got, _ = listAll(t, r, key, "metadata=mod3=1&metadata=i=7")
		if diff := cmp.Diff([]string{ids[7]}, got); diff != "" {
			t.Errorf("mod3=1 AND i=7 (-want +got):\n%s", diff)
		}
		got, _ = listAll(t, r, key, "metadata=mod3=2&metadata=i=7")
		if len(got) != 0 {
			t.Errorf("mod3=2 AND i=7: %v, want none", got)
		}
		got, _ = listAll(t, r, key, "metadata=mod3=0&state=paused")
		for _, id := range got {
			i := slices.Index(ids, id)
			if i%3 != 0 || !slices.Contains(paused, id) {
				t.Errorf("mod3=0 & paused lists sandbox %d", i)
			}
		}
		if len(got) == 0 {
			t.Errorf("mod3=0 & paused lists nothing")
		}
	})
	t.Run("other owner", func(t *testing.T) {
		got, _ := listAll(t, r, key, "metadata=mod3=0")
		if slices.Contains(got, other.ID) {
			t.Errorf("alice's list shows bob's sandbox")
		}
	})
}

func TestOwnerIsolation(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{})
	defer be.Close()
	r := startServer(t, options{dir: t.TempDir(), be: be})
	defer r.stop()
	a, b := r.key("alice"), r.key("bob")
	s := r.create(a, nil)
	base := "/v1/sandboxes/" + s.ID
	for _, c := range []struct{ method, path, body string }{
		{"GET", base, ""},
		{"DELETE", base, ""},
		{"POST", base + "/timeout", `{"timeout_s":5}`},
		{"PATCH", base + "/metadata", `{"metadata":{"x":"y"}}`},
		{"POST", base + "/connect", ""},
		{"POST", base + "/pause", ""},
		{"PUT", base + "/network", `{"internet":false}`},
		{"GET", base + "/metrics", ""},
	} {
		var e errBody
		st := r.call(b, c.method, c.path, c.body, &e)
		if st != 404 || e.Error.Code != "not_found" {
			t.Errorf("bob: %s %s = %d %+v, want 404 not_found", c.method, c.path, st, e)
		}
		var missing errBody
		r.call(b, c.method, "/v1/sandboxes/abcdefghij0123456789"+c.path[len(base):], c.body, &missing)
		if strings.ReplaceAll(e.Error.Message, s.ID, "abcdefghij0123456789") != missing.Error.Message {
			t.Errorf("bob: message for alice's sandbox %q differs from a missing one's %q", e.Error.Message, missing.Error.Message)
		}
	}
	for _, q := range []string{"", "state=running,paused,killed,starting"} {
		if l, _ := r.list(b, q); len(l.Sandboxes) != 0 {
			t.Errorf("bob's list %q shows %d sandboxes", q, len(l.Sandboxes))
		}
	}
	got, st := r.get(a, s.ID)
	if st != 200 || got.State != "running" || got.Metadata["x"] != "" {
		t.Errorf("after bob's attempts alice sees %d %+v; want it running and untouched", st, got)
	}
	if _, paused, n, ok := be.Sandbox(s.ID); !ok || paused || !n.Internet {
		t.Errorf("after bob's attempts the backend has ok=%v paused=%v network=%+v", ok, paused, n)
	}
}
