package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/client/clienttest"
	"github.com/cubicle-dev/cubicle/desktop"
)

// startServer runs a fake server and a client of it.
func startServer(t *testing.T, o clienttest.ServerOptions) (*clienttest.Server, *client.Server) {
	t.Helper()
	fs := clienttest.StartServer(t, o)
	srv, err := client.New(fs.URL, clienttest.TestAPIKey, client.WithUserAgent("cubicle-test/1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return fs, srv
}

func TestServerCreate(t *testing.T) {
	fs, srv := startServer(t, clienttest.ServerOptions{})
	ctx := t.Context()
	sb, err := srv.Create(ctx, client.CreateOptions{
		Resolution: desktop.Size{Width: 800, Height: 600},
		DPI:        120,
		Timeout:    90*time.Second + time.Millisecond, // rounds up
		Metadata:   map[string]string{"team": "qa"},
		Env:        map[string]string{"LANG": "C.UTF-8"},
		Network:    &client.Network{Internet: false, AllowOut: []string{"10.1.0.0/16"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	reqs := fs.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %v", reqs)
	}
	got := sent{reqs[0].Method, reqs[0].Path, reqs[0].Query.Encode(), canonJSON(t, reqs[0].Body)}
	want := sent{"POST", "/v1/sandboxes", "", canonJSON(t, []byte(`{"resolution":{"width":800,"height":600},"dpi":120,"timeout_s":91,
		"metadata":{"team":"qa"},"env":{"LANG":"C.UTF-8"},"network":{"internet":false,"allow_out":["10.1.0.0/16"]}}`))}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("create request (-want +got):\n%s", d)
	}
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer "+clienttest.TestAPIKey {
		t.Errorf("Authorization = %q", got)
	}
	if sb.ID() == "" || sb.AgentURL() != fs.URL+"/sandboxes/"+sb.ID()+"/agent" {
		t.Errorf("ID %q, AgentURL %q", sb.ID(), sb.AgentURL())
	}

	// The desktop methods go through the server's proxy, with the
	// sandbox's token and never the API key.
	size, err := sb.GetScreenSize(ctx)
	if err != nil || size != (desktop.Size{Width: 800, Height: 600}) {
		t.Errorf("GetScreenSize = %v, %v; want 800x600", size, err)
	}
	agent := fs.Agent(sb.ID())
	areqs := agent.Requests()
	if len(areqs) != 1 || areqs[0].Path != "/v1/screen" {
		t.Fatalf("agent requests = %v", areqs)
	}
	if h := areqs[0].Header; h.Get("X-Access-Token") != "tok-"+sb.ID() || h.Get("Authorization") != "" || h.Get("X-Api-Key") != "" {
		t.Errorf("agent got headers %v; want the access token only", h)
	}

	info, err := sb.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != client.StateRunning || info.EndAt.Sub(info.StartedAt) != 91*time.Second || info.Metadata["team"] != "qa" ||
		info.Network.Internet || info.DPI != 120 || info.Limits.MemoryMB != 2048 {
		t.Errorf("info = %+v", info)
	}
	if s := fmt.Sprint(info.AccessToken); s != "[redacted]" {
		t.Errorf("the access token prints as %q", s)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "token", info.AccessToken)
	if strings.Contains(logged.String(), string(info.AccessToken)) {
		t.Errorf("the access token was logged: %s", logged.String())
	}
}

func TestServerLifecycle(t *testing.T) {
	fs, srv := startServer(t, clienttest.ServerOptions{})
	ctx := t.Context()
	sb, err := srv.Create(ctx, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := sb.ID()
	if err := sb.SetTimeout(ctx, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := sb.SetMetadata(ctx, map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	if err := sb.SetNetwork(ctx, client.Network{Internet: true, DenyOut: []string{"1.2.3.0/24"}}); err != nil {
		t.Fatal(err)
	}
	info, err := srv.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if info.EndAt.Sub(info.StartedAt) != 10*time.Minute || info.Metadata["a"] != "b" || info.Network.DenyOut[0] != "1.2.3.0/24" {
		t.Errorf("after the changes: %+v", info)
	}
	m, err := sb.Metrics(ctx)
	if err != nil || m.CPUCount != 1 || m.MemTotal != 2048<<20 || m.Timestamp.IsZero() {
		t.Errorf("Metrics = %+v, %v", m, err)
	}

	if err := sb.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sb.Pause(ctx); !errors.Is(err, client.ErrConflict) {
		t.Errorf("second Pause = %v, want ErrConflict", err)
	}
	if _, err := sb.GetScreenSize(ctx); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("desktop call on a paused sandbox = %v, want ErrUnavailable", err)
	}
	sb2, err := srv.Connect(ctx, id, client.ConnectOptions{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb2.GetScreenSize(ctx); err != nil {
		t.Errorf("after Connect: %v", err)
	}
	reqs := fs.Requests()
	if last := reqs[len(reqs)-1]; last.Path != "/v1/sandboxes/"+id+"/connect" || canonJSON(t, last.Body) != `{"timeout_s":60}` {
		t.Errorf("connect request = %v", last)
	}

	if err := sb.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Get(ctx, id); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Get after Kill = %v, want ErrNotFound", err)
	}
	if err := srv.Kill(ctx, id); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Kill twice = %v, want ErrNotFound", err)
	}
	if _, err := sb.GetScreenSize(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("desktop call on a killed sandbox = %v, want ErrNotFound", err)
	}
}

func TestServerList(t *testing.T) {
	_, srv := startServer(t, clienttest.ServerOptions{})
	ctx := t.Context()
	var ids []string
	for i := range 5 {
		sb, err := srv.Create(ctx, client.CreateOptions{Metadata: map[string]string{"n": fmt.Sprint(i), "odd": fmt.Sprint(i%2 == 1)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sb.ID())
	}
	page, err := srv.List(ctx, client.ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		if len(page.Sandboxes) > 2 {
			t.Fatalf("page of %d with limit 2", len(page.Sandboxes))
		}
		for _, s := range page.Sandboxes {
			got = append(got, s.ID)
			if s.AccessToken != "" {
				t.Errorf("a list gave the access token of %s", s.ID)
			}
		}
		if !page.HasNext() {
			break
		}
		if page, err = page.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff(ids, got); d != "" {
		t.Errorf("pages (-want +got):\n%s", d)
	}

	got = nil
	for s, err := range srv.All(ctx, client.ListOptions{Metadata: map[string]string{"odd": "true"}, Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s.ID)
	}
	if d := cmp.Diff([]string{ids[1], ids[3]}, got); d != "" {
		t.Errorf("All with metadata (-want +got):\n%s", d)
	}

	sb, _ := srv.Connect(ctx, ids[0])
	sb.Pause(ctx)
	page, err = srv.List(ctx, client.ListOptions{State: []string{client.StatePaused}})
	if err != nil || len(page.Sandboxes) != 1 || page.Sandboxes[0].ID != ids[0] {
		t.Errorf("paused = %+v, %v", page, err)
	}
	for _, err := range srv.All(ctx, client.ListOptions{Limit: 101}) {
		if !errors.Is(err, client.ErrInvalid) {
			t.Errorf("All with limit 101 = %v, want ErrInvalid", err)
		}
	}
}

// TestServerOwners: one key's sandboxes are invisible to another.
func TestServerOwners(t *testing.T) {
	const other = "cbk_ffffffffffffffffffffffffffffffffffffffff"
	fs, mine := startServer(t, clienttest.ServerOptions{APIKeys: []string{clienttest.TestAPIKey, other}})
	theirs, err := client.New(fs.URL, other)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	sb, err := mine.Create(ctx, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := theirs.Get(ctx, sb.ID()); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("another owner's Get = %v, want ErrNotFound", err)
	}
	if err := theirs.Kill(ctx, sb.ID()); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("another owner's Kill = %v, want ErrNotFound", err)
	}
	if page, err := theirs.List(ctx, client.ListOptions{}); err != nil || len(page.Sandboxes) != 0 {
		t.Errorf("another owner's List = %+v, %v", page, err)
	}
	bad, _ := client.New(fs.URL, "cbk_nope")
	if _, err := bad.List(ctx, client.ListOptions{}); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("unknown key = %v, want ErrUnauthorized", err)
	}
}

func TestServerBadInput(t *testing.T) {
	fs, srv := startServer(t, clienttest.ServerOptions{})
	ctx := t.Context()
	direct, _ := client.ConnectAgent("http://127.0.0.1:1")
	tests := []struct {
		name  string
		call  func() error
		class error
		msg   string
	}{
		{"empty key", func() error { _, err := client.New(fs.URL, ""); return err }, client.ErrInvalid, "API key"},
		{"bad url", func() error { _, err := client.New("ftp://x", "k"); return err }, client.ErrInvalid, "server URL"},
		{"negative timeout", func() error { _, err := srv.Create(ctx, client.CreateOptions{Timeout: -time.Second}); return err }, client.ErrInvalid, "negative"},
		{"bad resolution", func() error {
			_, err := srv.Create(ctx, client.CreateOptions{Resolution: desktop.Size{Width: 10, Height: 10}})
			return err
		}, client.ErrInvalid, "resolution"},
		{"bad id", func() error { _, err := srv.Connect(ctx, "../etc"); return err }, client.ErrInvalid, "not valid"},
		{"unknown id", func() error { _, err := srv.Connect(ctx, "nosuchsandbox"); return err }, client.ErrNotFound, "nosuchsandbox"},
		{"no server", func() error { return direct.Kill(ctx) }, client.ErrInvalid, "ConnectAgent"},
		{"no server info", func() error { _, err := direct.Info(ctx); return err }, client.ErrInvalid, "Server.Create"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.class) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Errorf("err = %v, want class %v with %q", err, tt.class, tt.msg)
			}
		})
	}
	if direct.ID() != "" {
		t.Errorf("ID of a direct sandbox = %q", direct.ID())
	}
	// A server that is down is named as such.
	down, _ := client.New("http://127.0.0.1:1", "k")
	_, err := down.List(context.Background(), client.ListOptions{})
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "server unreachable") {
		t.Errorf("down server = %v", err)
	}
}
