package sandboxtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// cmpRecords compares records: times by instant, nil and empty alike.
var cmpRecords = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

// TestStore is the conformance suite of sandbox.Store. newStore returns an
// empty store for each subtest; the suite closes it.
func TestStore(t *testing.T, newStore func(t *testing.T) sandbox.Store) {
	open := func(t *testing.T) sandbox.Store {
		s := newStore(t)
		t.Cleanup(func() { s.Close() })
		return s
	}
	base := time.Date(2031, 3, 4, 5, 6, 7, 123456789, time.UTC)

	t.Run("insert and get", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		want := fullRecord(base)
		if err := s.InsertSandbox(ctx, want); err != nil {
			t.Fatalf("InsertSandbox: %v", err)
		}
		got, err := s.GetSandbox(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetSandbox: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpRecords); diff != "" {
			t.Errorf("GetSandbox after InsertSandbox (-want +got):\n%s", diff)
		}
		if err := s.InsertSandbox(ctx, want); !errors.Is(err, desktop.ErrConflict) {
			t.Errorf("InsertSandbox of an existing id: got %v, want a desktop.ErrConflict", err)
		}
		if _, err := s.GetSandbox(ctx, "nosuchsandbox0000000"); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("GetSandbox of a missing id: got %v, want a desktop.ErrNotFound", err)
		}
	})

	t.Run("update", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		orig := fullRecord(base)
		if err := s.InsertSandbox(ctx, orig); err != nil {
			t.Fatal(err)
		}
		upd := orig
		upd.Owner = "someone-else"        // must not change
		upd.Created = base.Add(time.Hour) // must not change
		upd.State = sandbox.StateKilled
		upd.EndAt = base.Add(2 * time.Minute)
		upd.Ended = base.Add(90 * time.Second)
		upd.Metadata = map[string]string{"only": "this"}
		upd.Params.Network = sandbox.NetworkPolicy{Internet: false}
		upd.Instance = nil
		if err := s.UpdateSandbox(ctx, upd); err != nil {
			t.Fatalf("UpdateSandbox: %v", err)
		}
		want := upd
		want.Owner, want.Created = orig.Owner, orig.Created
		got, err := s.GetSandbox(ctx, orig.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmpRecords); diff != "" {
			t.Errorf("GetSandbox after UpdateSandbox (-want +got):\n%s", diff)
		}
		missing := upd
		missing.ID = "nosuchsandbox0000000"
		if err := s.UpdateSandbox(ctx, missing); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("UpdateSandbox of a missing id: got %v, want a desktop.ErrNotFound", err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		r := fullRecord(base)
		if err := s.InsertSandbox(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSandbox(ctx, r.ID); err != nil {
			t.Fatalf("DeleteSandbox: %v", err)
		}
		if _, err := s.GetSandbox(ctx, r.ID); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("GetSandbox after DeleteSandbox: got %v, want a desktop.ErrNotFound", err)
		}
		if err := s.DeleteSandbox(ctx, r.ID); err != nil {
			t.Errorf("DeleteSandbox of a missing id: %v, want nil", err)
		}
	})

	t.Run("list", func(t *testing.T) { testList(t, open(t), base) })

	t.Run("prune", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		cut := base.Add(time.Hour)
		recs := map[string]struct {
			state sandbox.State
			ended time.Time
			kept  bool
		}{
			"killedlongago0000000": {sandbox.StateKilled, cut.Add(-time.Minute), false},
			"killedlately00000000": {sandbox.StateKilled, cut.Add(time.Minute), true},
			"running0000000000000": {sandbox.StateRunning, time.Time{}, true},
		}
		for id, r := range recs {
			rec := fullRecord(base)
			rec.ID, rec.State, rec.Ended = id, r.state, r.ended
			if err := s.InsertSandbox(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range []sandbox.Event{
			{Time: cut.Add(-time.Second), SandboxID: "running0000000000000", Owner: "o", Kind: sandbox.EventCreated},
			{Time: cut.Add(time.Second), SandboxID: "running0000000000000", Owner: "o", Kind: sandbox.EventPaused},
		} {
			if err := s.AddEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.Prune(ctx, cut)
		if err != nil {
			t.Fatalf("Prune: %v", err)
		}
		if n != 1 {
			t.Errorf("Prune removed %d sandboxes, want 1", n)
		}
		for id, r := range recs {
			_, err := s.GetSandbox(ctx, id)
			if got := err == nil; got != r.kept {
				t.Errorf("after Prune, %s is kept: %v (err %v), want %v", id, got, err, r.kept)
			}
		}
		evs, err := s.Events(ctx, "running0000000000000")
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Kind != sandbox.EventPaused {
			t.Errorf("events after Prune: got %+v, want only the %q one", evs, sandbox.EventPaused)
		}
	})

	t.Run("events", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		want := []sandbox.Event{
			{Time: base, SandboxID: "aaaaaaaaaaaaaaaaaaaa", Owner: "o", Kind: sandbox.EventCreated},
			{Time: base.Add(time.Second), SandboxID: "aaaaaaaaaaaaaaaaaaaa", Owner: "o", Kind: sandbox.EventPaused, Detail: "why"},
			{Time: base.Add(time.Second), SandboxID: "aaaaaaaaaaaaaaaaaaaa", Owner: "o", Kind: sandbox.EventKilled},
		}
		other := sandbox.Event{Time: base, SandboxID: "bbbbbbbbbbbbbbbbbbbb", Owner: "p", Kind: sandbox.EventCreated}
		for _, e := range []sandbox.Event{want[0], other, want[1], want[2]} {
			if err := s.AddEvent(ctx, e); err != nil {
				t.Fatalf("AddEvent: %v", err)
			}
		}
		got, err := s.Events(ctx, "aaaaaaaaaaaaaaaaaaaa")
		if err != nil {
			t.Fatalf("Events: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpRecords); diff != "" {
			t.Errorf("Events (-want +got):\n%s", diff)
		}
	})

	t.Run("keys", func(t *testing.T) { testKeys(t, open(t), base) })

	t.Run("concurrent writes", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		const writers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					r := fullRecord(base.Add(time.Duration(w*each+i) * time.Millisecond))
					r.ID = fmt.Sprintf("w%02di%02d%014d", w, i, 0)
					if err := s.InsertSandbox(ctx, r); err != nil {
						errs <- err
						return
					}
					r.State = sandbox.StateKilled
					if err := s.UpdateSandbox(ctx, r); err != nil {
						errs <- err
						return
					}
					if err := s.AddEvent(ctx, sandbox.Event{Time: base, SandboxID: r.ID, Owner: r.Owner, Kind: sandbox.EventKilled}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent write: %v", err)
		}
		got, err := s.ListSandboxes(ctx, sandbox.Filter{States: []sandbox.State{sandbox.StateKilled}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != writers*each {
			t.Errorf("after %d concurrent inserts and updates, %d killed records, want %d", writers*each, len(got), writers*each)
		}
	})
}

// fullRecord is a record with every field set.
func fullRecord(created time.Time) sandbox.Record {
	return sandbox.Record{
		ID:       "abcdefghij0123456789",
		Owner:    "owner-a",
		Template: "desktop",
		State:    sandbox.StateRunning,
		Created:  created,
		EndAt:    created.Add(5 * time.Minute),
		Metadata: map[string]string{"user": "ada", "task": "42", "ünïcode": "välue=with=equals"},
		Params: sandbox.Params{
			Width: 1280, Height: 800, DPI: 120,
			Limits: sandbox.Limits{CPUs: 1.5, MemoryMB: 2048, DiskMB: 4096, Pids: 512},
			Network: sandbox.NetworkPolicy{
				Internet: true,
				AllowOut: []netip.Prefix{netip.MustParsePrefix("1.2.3.0/24"), netip.MustParsePrefix("2001:db8::/32")},
				DenyOut:  []netip.Prefix{netip.MustParsePrefix("8.8.8.8/32")},
			},
		},
		Instance: &sandbox.Instance{
			ID: "abcdefghij0123456789", InitPID: 4242, InitStart: 1 << 40,
			Addr:    netip.MustParseAddr("10.200.0.2"),
			State:   []byte(`{"cgroup":"/sys/fs/cgroup/cubicle/abc","veth":"cb0"}`),
			Started: created.Add(time.Second),
		},
		Token: "0123456789abcdef0123456789abcdef0123456789abcdef",
	}
}

func testList(t *testing.T, s sandbox.Store, base time.Time) {
	ctx := context.Background()
	type spec struct {
		id    string
		owner string
		state sandbox.State
		md    map[string]string
		at    time.Duration // after base; equal times order by id
	}
	specs := []spec{
		{"a0000000000000000001", "a", sandbox.StateRunning, map[string]string{"env": "prod", "team": "x"}, 0},
		{"a0000000000000000002", "a", sandbox.StatePaused, map[string]string{"env": "prod", "team": "y"}, time.Second},
		{"a0000000000000000003", "a", sandbox.StateKilled, map[string]string{"env": "prod", "team": "x"}, time.Second},
		{"a0000000000000000000", "a", sandbox.StateRunning, map[string]string{"env": "dev"}, 2 * time.Second},
		{"a0000000000000000004", "a", sandbox.StateStarting, nil, 3 * time.Second},
		{"b0000000000000000001", "b", sandbox.StateRunning, map[string]string{"env": "prod", "team": "x"}, 0},
	}
	for _, sp := range specs {
		r := fullRecord(base.Add(sp.at))
		r.ID, r.Owner, r.State, r.Metadata = sp.id, sp.owner, sp.state, sp.md
		r.Instance = nil
		if err := s.InsertSandbox(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(recs []sandbox.Record) []string {
		out := []string{}
		for _, r := range recs {
			out = append(out, r.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    sandbox.Filter
		want []string
	}{
		{"all", sandbox.Filter{}, []string{"a0000000000000000001", "b0000000000000000001", "a0000000000000000002",
			"a0000000000000000003", "a0000000000000000000", "a0000000000000000004"}},
		{"owner", sandbox.Filter{Owner: "a"}, []string{"a0000000000000000001", "a0000000000000000002",
			"a0000000000000000003", "a0000000000000000000", "a0000000000000000004"}},
		{"other owner", sandbox.Filter{Owner: "b"}, []string{"b0000000000000000001"}},
		{"no such owner", sandbox.Filter{Owner: "c"}, []string{}},
		{"states", sandbox.Filter{Owner: "a", States: []sandbox.State{sandbox.StateRunning, sandbox.StatePaused}},
			[]string{"a0000000000000000001", "a0000000000000000002", "a0000000000000000000"}},
		{"one metadata pair", sandbox.Filter{Owner: "a", Metadata: map[string]string{"env": "prod"}},
			[]string{"a0000000000000000001", "a0000000000000000002", "a0000000000000000003"}},
		{"metadata pairs are ANDed", sandbox.Filter{Owner: "a", Metadata: map[string]string{"env": "prod", "team": "x"}},
			[]string{"a0000000000000000001", "a0000000000000000003"}},
		{"metadata value must match", sandbox.Filter{Metadata: map[string]string{"env": "staging"}}, []string{}},
		{"metadata key must exist", sandbox.Filter{Metadata: map[string]string{"nokey": ""}}, []string{}},
		{"states and metadata", sandbox.Filter{Owner: "a", States: []sandbox.State{sandbox.StateRunning},
			Metadata: map[string]string{"team": "x"}}, []string{"a0000000000000000001"}},
		{"limit", sandbox.Filter{Owner: "a", Limit: 2}, []string{"a0000000000000000001", "a0000000000000000002"}},
		{"after a tie", sandbox.Filter{Owner: "a", After: sandbox.Cursor{Created: base.Add(time.Second), ID: "a0000000000000000002"}},
			[]string{"a0000000000000000003", "a0000000000000000000", "a0000000000000000004"}},
		{"after and limit", sandbox.Filter{After: sandbox.Cursor{Created: base, ID: "a0000000000000000001"}, Limit: 2},
			[]string{"b0000000000000000001", "a0000000000000000002"}},
		{"after the end", sandbox.Filter{After: sandbox.Cursor{Created: base.Add(time.Hour), ID: "a0000000000000000000"}}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListSandboxes(ctx, tt.f)
			if err != nil {
				t.Fatalf("ListSandboxes(%+v): %v", tt.f, err)
			}
			if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
				t.Errorf("ListSandboxes(%+v) ids (-want +got):\n%s", tt.f, diff)
			}
		})
	}
	t.Run("records are whole", func(t *testing.T) {
		got, err := s.ListSandboxes(ctx, sandbox.Filter{Owner: "b"})
		if err != nil || len(got) != 1 {
			t.Fatalf("ListSandboxes: %d records, %v", len(got), err)
		}
		want, err := s.GetSandbox(ctx, "b0000000000000000001")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got[0], cmpRecords); diff != "" {
			t.Errorf("listed record differs from GetSandbox (-get +list):\n%s", diff)
		}
	})
}

func testKeys(t *testing.T, s sandbox.Store, base time.Time) {
	ctx := context.Background()
	k1 := sandbox.Key{ID: "key1", Owner: "alice", Prefix: "cbk_1111", Hash: "h1", Created: base}
	k2 := sandbox.Key{ID: "key2", Owner: "alice", Prefix: "cbk_2222", Hash: "h2", Created: base.Add(time.Second)}
	k3 := sandbox.Key{ID: "key3", Owner: "bob", Prefix: "cbk_3333", Hash: "h3", Created: base.Add(2 * time.Second)}
	for _, k := range []sandbox.Key{k2, k1, k3} {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatalf("CreateKey(%s): %v", k.ID, err)
		}
	}
	dupHash := k1
	dupHash.ID = "key4"
	if err := s.CreateKey(ctx, dupHash); !errors.Is(err, desktop.ErrConflict) {
		t.Errorf("CreateKey with a known hash: got %v, want a desktop.ErrConflict", err)
	}
	dupID := k1
	dupID.Hash = "h4"
	if err := s.CreateKey(ctx, dupID); !errors.Is(err, desktop.ErrConflict) {
		t.Errorf("CreateKey with a known id: got %v, want a desktop.ErrConflict", err)
	}
	got, err := s.KeyByHash(ctx, "h2")
	if err != nil {
		t.Fatalf("KeyByHash: %v", err)
	}
	if diff := cmp.Diff(k2, got, cmpRecords); diff != "" {
		t.Errorf("KeyByHash (-want +got):\n%s", diff)
	}
	if _, err := s.KeyByHash(ctx, "nope"); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("KeyByHash of an unknown hash: got %v, want a desktop.ErrNotFound", err)
	}
	revokedAt := base.Add(time.Minute)
	if err := s.RevokeKey(ctx, "key1", revokedAt); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	if err := s.RevokeKey(ctx, "key1", revokedAt.Add(time.Hour)); err != nil {
		t.Fatalf("RevokeKey again: %v", err)
	}
	if err := s.RevokeKey(ctx, "nokey", revokedAt); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("RevokeKey of an unknown id: got %v, want a desktop.ErrNotFound", err)
	}
	k1.Revoked = revokedAt
	all, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	if diff := cmp.Diff([]sandbox.Key{k1, k2, k3}, all, cmpRecords); diff != "" {
		t.Errorf("ListKeys (-want +got):\n%s", diff)
	}
	if got, err := s.KeyByHash(ctx, "h1"); err != nil || !got.Revoked.Equal(revokedAt) {
		t.Errorf("KeyByHash of a revoked key: revoked %v, %v; want revoked at %v", got.Revoked, err, revokedAt)
	}
}
