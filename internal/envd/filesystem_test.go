package envd_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	fspb "github.com/cubicle-dev/cubicle/internal/envd/spec/filesystem"
	"github.com/cubicle-dev/cubicle/internal/envd/spec/filesystem/filesystemconnect"
)

// ownedBy fails unless p belongs to the sandbox's desktop user.
func (sb *sandbox) ownedBy(t *testing.T, p string) {
	t.Helper()
	if sb.user == nil {
		return
	}
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); s.Uid != sb.user.UID || s.Gid != sb.user.GID {
		t.Errorf("%s is owned by %d:%d, want %d:%d", p, s.Uid, s.Gid, sb.user.UID, sb.user.GID)
	}
}

func TestFilesystem(t *testing.T) {
	sb := startAgent(t)
	home := sb.home(t)
	for _, codec := range codecs {
		t.Run(codec.name, func(t *testing.T) {
			c := sb.fs(codec.opts...)
			ctx := context.Background()
			dir := "fs-" + codec.name // relative: in the home
			abs := filepath.Join(home, dir)

			mk, err := c.MakeDir(ctx, connect.NewRequest(&fspb.MakeDirRequest{Path: dir + "/a/b"}))
			if err != nil {
				t.Fatalf("MakeDir: %v", err)
			}
			if e := mk.Msg.GetEntry(); e.GetPath() != abs+"/a/b" || e.GetType() != fspb.FileType_FILE_TYPE_DIRECTORY || e.GetName() != "b" {
				t.Errorf("MakeDir entry %v", e)
			}
			sb.ownedBy(t, abs+"/a/b")
			sb.ownedBy(t, abs)
			if _, err := c.MakeDir(ctx, connect.NewRequest(&fspb.MakeDirRequest{Path: "~/" + dir + "/a"})); connect.CodeOf(err) != connect.CodeAlreadyExists {
				t.Errorf("MakeDir of an existing dir: %v, want already_exists", err)
			}
			if err := os.WriteFile(abs+"/a/f.txt", []byte("hello"), 0o640); err != nil {
				t.Fatal(err)
			}
			if _, err := c.MakeDir(ctx, connect.NewRequest(&fspb.MakeDirRequest{Path: abs + "/a/f.txt"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("MakeDir over a file: %v, want invalid_argument", err)
			}
			if err := os.Symlink("f.txt", abs+"/a/link"); err != nil {
				t.Fatal(err)
			}

			st, err := c.Stat(ctx, connect.NewRequest(&fspb.StatRequest{Path: abs + "/a/f.txt"}))
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			e := st.Msg.GetEntry()
			if e.GetType() != fspb.FileType_FILE_TYPE_FILE || e.GetSize() != 5 || e.GetMode() != 0o640 || e.GetPermissions() != "-rw-r-----" ||
				e.GetOwner() == "" || e.GetModifiedTime().AsTime().Before(time.Now().Add(-time.Hour)) {
				t.Errorf("Stat entry %v", e)
			}
			ln, err := c.Stat(ctx, connect.NewRequest(&fspb.StatRequest{Path: abs + "/a/link"}))
			if err != nil || ln.Msg.GetEntry().GetType() != fspb.FileType_FILE_TYPE_FILE || ln.Msg.GetEntry().GetSymlinkTarget() != abs+"/a/f.txt" {
				t.Errorf("Stat of a symlink: %v %v, want the target's type and symlink_target", ln.Msg.GetEntry(), err)
			}
			if _, err := c.Stat(ctx, connect.NewRequest(&fspb.StatRequest{Path: abs + "/missing"})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("Stat of a missing path: %v, want not_found", err)
			}

			list := func(depth uint32) []string {
				t.Helper()
				resp, err := c.ListDir(ctx, connect.NewRequest(&fspb.ListDirRequest{Path: dir, Depth: depth}))
				if err != nil {
					t.Fatalf("ListDir depth %d: %v", depth, err)
				}
				var paths []string
				for _, e := range resp.Msg.GetEntries() {
					paths = append(paths, e.GetPath())
				}
				slices.Sort(paths)
				return paths
			}
			if got, want := list(1), []string{abs + "/a"}; !slices.Equal(got, want) {
				t.Errorf("ListDir depth 1 = %v, want %v", got, want)
			}
			if got, want := list(3), []string{abs + "/a", abs + "/a/b", abs + "/a/f.txt", abs + "/a/link"}; !slices.Equal(got, want) {
				t.Errorf("ListDir depth 3 = %v, want %v", got, want)
			}
			if _, err := c.ListDir(ctx, connect.NewRequest(&fspb.ListDirRequest{Path: abs + "/a/f.txt", Depth: 1})); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("ListDir of a file: %v, want invalid_argument", err)
			}
			if _, err := c.ListDir(ctx, connect.NewRequest(&fspb.ListDirRequest{Path: abs + "/nope", Depth: 1})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("ListDir of a missing dir: %v, want not_found", err)
			}

			mv, err := c.Move(ctx, connect.NewRequest(&fspb.MoveRequest{Source: abs + "/a/f.txt", Destination: dir + "/new/parent/g.txt"}))
			if err != nil {
				t.Fatalf("Move: %v", err)
			}
			if e := mv.Msg.GetEntry(); e.GetPath() != abs+"/new/parent/g.txt" || e.GetSize() != 5 {
				t.Errorf("Move entry %v", e)
			}
			sb.ownedBy(t, abs+"/new/parent")
			if _, err := c.Move(ctx, connect.NewRequest(&fspb.MoveRequest{Source: abs + "/a/f.txt", Destination: abs + "/x"})); connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("Move of a missing source: %v, want not_found", err)
			}

			for _, p := range []string{dir, dir + "/never-was"} {
				if _, err := c.Remove(ctx, connect.NewRequest(&fspb.RemoveRequest{Path: p})); err != nil {
					t.Errorf("Remove %s: %v", p, err)
				}
			}
			if _, err := os.Stat(abs); !os.IsNotExist(err) {
				t.Errorf("%s is still there after Remove: %v", abs, err)
			}
		})
	}
}

func TestFilesystemPermissions(t *testing.T) {
	sb := startAgent(t)
	if sb.user == nil {
		t.Skip("acting as another user needs root")
	}
	c := sb.fs()
	ctx := context.Background()
	if _, err := c.MakeDir(ctx, connect.NewRequest(&fspb.MakeDirRequest{Path: "/root/not-yours"})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("MakeDir in /root as the user: %v, want permission_denied", err)
	}
	if _, err := c.MakeDir(ctx, asUser(connect.NewRequest(&fspb.MakeDirRequest{Path: "/tmp/cubicle-envd-root-dir"}), "root")); err != nil {
		t.Errorf("MakeDir as root: %v", err)
	}
	defer os.RemoveAll("/tmp/cubicle-envd-root-dir")
	st, err := os.Stat("/tmp/cubicle-envd-root-dir")
	if err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the directory made as root: %v %v", st, err)
	}
}

// watchEvents collects events from a WatchDir stream.
func watchDir(t *testing.T, c filesystemconnect.FilesystemClient, req *fspb.WatchDirRequest) (<-chan *fspb.FilesystemEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.WatchDir(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() || s.Msg().GetStart() == nil {
		t.Fatalf("first WatchDir message %v (%v), want start", s.Msg(), s.Err())
	}
	ch := make(chan *fspb.FilesystemEvent, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for s.Receive() {
			if ev := s.Msg().GetFilesystem(); ev != nil {
				ch <- ev
			}
		}
	}()
	return ch, func() { cancel(); <-done; s.Close() }
}

// expectEvent waits for an event of typ on name, skipping others.
func expectEvent(t *testing.T, ch <-chan *fspb.FilesystemEvent, name string, typ fspb.EventType) *fspb.FilesystemEvent {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch ended before %v %s", typ, name)
			}
			if ev.GetName() == name && ev.GetType() == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %v event for %s", typ, name)
		}
	}
}

func TestWatchDir(t *testing.T) {
	sb := startAgent(t)
	c := sb.fs(connect.WithProtoJSON())
	dir := filepath.Join(sb.home(t), "watched")
	if err := os.MkdirAll(dir+"/old", 0o755); err != nil {
		t.Fatal(err)
	}
	ch, stop := watchDir(t, c, &fspb.WatchDirRequest{Path: "watched", Recursive: true, IncludeEntry: true})
	defer stop()

	os.WriteFile(dir+"/a.txt", []byte("1"), 0o644)
	ev := expectEvent(t, ch, "a.txt", fspb.EventType_EVENT_TYPE_CREATE)
	if ev.GetEntry().GetPath() != dir+"/a.txt" {
		t.Errorf("create event entry %v, want the file's", ev.GetEntry())
	}
	expectEvent(t, ch, "a.txt", fspb.EventType_EVENT_TYPE_WRITE)
	os.Chmod(dir+"/a.txt", 0o600)
	expectEvent(t, ch, "a.txt", fspb.EventType_EVENT_TYPE_CHMOD)
	os.Rename(dir+"/a.txt", dir+"/b.txt")
	expectEvent(t, ch, "a.txt", fspb.EventType_EVENT_TYPE_RENAME)
	expectEvent(t, ch, "b.txt", fspb.EventType_EVENT_TYPE_CREATE)
	os.Remove(dir + "/b.txt")
	expectEvent(t, ch, "b.txt", fspb.EventType_EVENT_TYPE_REMOVE)
	// Recursive: existing and new subdirectories.
	os.WriteFile(dir+"/old/c.txt", nil, 0o644)
	expectEvent(t, ch, "old/c.txt", fspb.EventType_EVENT_TYPE_CREATE)
	os.Mkdir(dir+"/new", 0o755)
	expectEvent(t, ch, "new", fspb.EventType_EVENT_TYPE_CREATE)
	waitFor(t, "a file in a new subdirectory to be reported", func() bool {
		os.WriteFile(dir+"/new/d.txt", nil, 0o644)
		select {
		case ev := <-ch:
			return ev.GetName() == "new/d.txt"
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})

	errTests := []struct {
		path string
		code connect.Code
	}{
		{"watched/missing", connect.CodeNotFound},
		{"watched/old/c.txt", connect.CodeInvalidArgument},
	}
	for _, tt := range errTests {
		s, err := c.WatchDir(context.Background(), connect.NewRequest(&fspb.WatchDirRequest{Path: tt.path}))
		if err == nil {
			for s.Receive() {
			}
			err = s.Err()
		}
		if connect.CodeOf(err) != tt.code {
			t.Errorf("WatchDir %s: %v, want %v", tt.path, err, tt.code)
		}
	}
}

func TestPollingWatcher(t *testing.T) {
	sb := startAgent(t)
	c := sb.fs()
	ctx := context.Background()
	dir := filepath.Join(sb.home(t), "polled")
	os.MkdirAll(dir, 0o755)
	w, err := c.CreateWatcher(ctx, connect.NewRequest(&fspb.CreateWatcherRequest{Path: dir}))
	if err != nil {
		t.Fatal(err)
	}
	id := w.Msg.GetWatcherId()
	os.WriteFile(dir+"/x", nil, 0o644)
	waitFor(t, "the create event", func() bool {
		resp, err := c.GetWatcherEvents(ctx, connect.NewRequest(&fspb.GetWatcherEventsRequest{WatcherId: id}))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Msg.GetEvents() {
			if ev.GetName() == "x" && ev.GetType() == fspb.EventType_EVENT_TYPE_CREATE {
				return true
			}
		}
		return false
	})
	if _, err := c.RemoveWatcher(ctx, connect.NewRequest(&fspb.RemoveWatcherRequest{WatcherId: id})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetWatcherEvents(ctx, connect.NewRequest(&fspb.GetWatcherEventsRequest{WatcherId: id})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("events of a removed watcher: %v, want not_found", err)
	}
}
