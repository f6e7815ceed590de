package envd

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	fspb "github.com/cubicle-dev/cubicle/internal/envd/spec/filesystem"
)

// Limits of watchers.
const (
	maxWatches = 8192 // directories one recursive watcher watches
	// maxPolledEvents bounds the events a polling watcher keeps until
	// they are fetched; older ones are dropped.
	maxPolledEvents = 10_000
	maxPollWatchers = 128
)

// inotifyMask is what a watch reports.
const inotifyMask = unix.IN_CREATE | unix.IN_MODIFY | unix.IN_DELETE | unix.IN_MOVED_FROM |
	unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_ONLYDIR

// networkFS are the filesystem magic numbers of network mounts, which a
// watch needs allow_network_mounts for: inotify misses remote changes.
var networkFS = map[int64]string{
	unix.NFS_SUPER_MAGIC: "nfs", 0xff534d42: "cifs", 0xfe534d42: "smb2", unix.SMB_SUPER_MAGIC: "smb",
	unix.FUSE_SUPER_MAGIC: "fuse", unix.CODA_SUPER_MAGIC: "coda", unix.AFS_SUPER_MAGIC: "afs",
	0x6b414653: "kafs", unix.V9FS_MAGIC: "9p", 0x00c36400: "ceph",
}

// watcher is one inotify instance on a directory, optionally recursive.
type watcher struct {
	f            *fileSystem
	u            *User
	root         string
	recursive    bool
	includeEntry bool
	ino          *os.File
	dirs         map[int]string // watch descriptor -> directory

	events chan *fspb.FilesystemEvent
	done   chan struct{} // closed when the reader returned
}

// newWatcher checks the request and starts watching root.
func (f *fileSystem) newWatcher(u *User, root string, recursive, includeEntry, allowNetwork bool) (*watcher, error) {
	err := u.do(func() error {
		st, err := os.Stat(root)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("path '%s' is not a directory", root))
		}
		var sfs unix.Statfs_t
		if err := unix.Statfs(root, &sfs); err == nil {
			if name, ok := networkFS[int64(sfs.Type)]; ok && !allowNetwork {
				return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("path '%s' is on a network mount (%s); set allow_network_mounts to watch it anyway", root, name))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fsError("watch", root, err)
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("inotify: %w", err))
	}
	w := &watcher{f: f, u: u, root: root, recursive: recursive, includeEntry: includeEntry,
		ino: os.NewFile(uintptr(fd), "inotify"), dirs: map[int]string{},
		events: make(chan *fspb.FilesystemEvent, 256), done: make(chan struct{})}
	if err := w.add(root); err != nil {
		w.ino.Close()
		return nil, fsError("watch", root, err)
	}
	go w.read()
	return w, nil
}

// add watches dir and, when recursive, the directories under it.
func (w *watcher) add(dir string) error {
	return w.u.do(func() error { return w.addTree(dir, true) })
}

func (w *watcher) addTree(dir string, top bool) error {
	if len(w.dirs) >= maxWatches {
		return nil
	}
	wd, err := unix.InotifyAddWatch(int(w.ino.Fd()), dir, inotifyMask)
	if err != nil {
		if top {
			return &os.PathError{Op: "watch", Path: dir, Err: err}
		}
		return nil
	}
	w.dirs[wd] = dir
	if !w.recursive {
		return nil
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, de := range des {
		if de.IsDir() {
			w.addTree(path.Join(dir, de.Name()), false)
		}
	}
	return nil
}

// read turns inotify events into filesystem events until the inotify file
// is closed.
func (w *watcher) read() {
	defer close(w.done)
	defer close(w.events)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.ino.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			wd := int(int32(binary.NativeEndian.Uint32(buf[off:])))
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
			off += unix.SizeofInotifyEvent + nameLen
			w.handle(wd, mask, name)
		}
	}
}

// handle emits one event per operation in mask.
func (w *watcher) handle(wd int, mask uint32, name string) {
	dir, ok := w.dirs[wd]
	if mask&unix.IN_IGNORED != 0 {
		delete(w.dirs, wd)
		return
	}
	if !ok || (name == "" && dir != w.root) {
		// A subdirectory's own events also reach its parent's watch.
		return
	}
	full := dir
	if name != "" {
		full = path.Join(dir, name)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(full, w.root), "/")
	if mask&unix.IN_ISDIR != 0 && mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 && w.recursive {
		w.add(full)
	}
	ops := []struct {
		bit uint32
		typ fspb.EventType
	}{
		{unix.IN_CREATE | unix.IN_MOVED_TO, fspb.EventType_EVENT_TYPE_CREATE},
		{unix.IN_MODIFY, fspb.EventType_EVENT_TYPE_WRITE},
		{unix.IN_DELETE | unix.IN_DELETE_SELF, fspb.EventType_EVENT_TYPE_REMOVE},
		{unix.IN_MOVED_FROM, fspb.EventType_EVENT_TYPE_RENAME},
		{unix.IN_ATTRIB, fspb.EventType_EVENT_TYPE_CHMOD},
	}
	for _, op := range ops {
		if mask&op.bit == 0 {
			continue
		}
		ev := &fspb.FilesystemEvent{Name: rel, Type: op.typ}
		if w.includeEntry && op.typ != fspb.EventType_EVENT_TYPE_REMOVE && op.typ != fspb.EventType_EVENT_TYPE_RENAME {
			w.u.do(func() error {
				e, err := w.f.entry(full)
				ev.Entry = e
				return err
			})
		}
		w.events <- ev
	}
}

// stop closes the inotify file and waits for the reader. Whoever reads
// events must keep draining them until it returns, or call stop from
// another goroutine than the drainer only after draining stopped.
func (w *watcher) stop() {
	w.ino.Close()
	for range w.events {
	}
	<-w.done
}

func (f *fileSystem) WatchDir(ctx context.Context, req *connect.Request[fspb.WatchDirRequest], stream *connect.ServerStream[fspb.WatchDirResponse]) error {
	u, p, err := f.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return err
	}
	w, err := f.newWatcher(u, p, req.Msg.GetRecursive(), req.Msg.GetIncludeEntry(), req.Msg.GetAllowNetworkMounts())
	if err != nil {
		return err
	}
	defer w.stop()
	if err := stream.Send(&fspb.WatchDirResponse{Event: &fspb.WatchDirResponse_Start{Start: &fspb.WatchDirResponse_StartEvent{}}}); err != nil {
		return err
	}
	keepalive := keepaliveInterval(req.Header().Get("Keepalive-Ping-Interval"))
	timer := time.NewTimer(keepalive)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-w.events:
			if !ok {
				return connect.NewError(connect.CodeInternal, errors.New("the watch ended"))
			}
			if err := stream.Send(&fspb.WatchDirResponse{Event: &fspb.WatchDirResponse_Filesystem{Filesystem: ev}}); err != nil {
				return err
			}
			timer.Reset(keepalive)
		case <-timer.C:
			if err := stream.Send(&fspb.WatchDirResponse{Event: &fspb.WatchDirResponse_Keepalive{Keepalive: &fspb.WatchDirResponse_KeepAlive{}}}); err != nil {
				return err
			}
			timer.Reset(keepalive)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
			}
			return connect.NewError(connect.CodeCanceled, ctx.Err())
		}
	}
}

// pollWatcher is a watcher whose events are kept until fetched.
type pollWatcher struct {
	w    *watcher
	u    *User
	mu   sync.Mutex
	evs  []*fspb.FilesystemEvent
	done chan struct{} // closed when the collector returned
}

func (pw *pollWatcher) collect() {
	defer close(pw.done)
	for ev := range pw.w.events {
		pw.mu.Lock()
		if len(pw.evs) >= maxPolledEvents {
			pw.evs = pw.evs[1:]
		}
		pw.evs = append(pw.evs, ev)
		pw.mu.Unlock()
	}
}

func (pw *pollWatcher) stop() {
	pw.w.ino.Close()
	<-pw.done
	<-pw.w.done
}

func (f *fileSystem) CreateWatcher(ctx context.Context, req *connect.Request[fspb.CreateWatcherRequest]) (*connect.Response[fspb.CreateWatcherResponse], error) {
	u, p, err := f.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	n, closed := len(f.watchers), f.closed
	f.mu.Unlock()
	if closed {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("the sandbox is shutting down"))
	}
	if n >= maxPollWatchers {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("%d watchers exist, the most at once; remove some", n))
	}
	w, err := f.newWatcher(u, p, req.Msg.GetRecursive(), req.Msg.GetIncludeEntry(), req.Msg.GetAllowNetworkMounts())
	if err != nil {
		return nil, err
	}
	pw := &pollWatcher{w: w, u: u, done: make(chan struct{})}
	go pw.collect()
	id := rand.Text()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		pw.stop()
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("the sandbox is shutting down"))
	}
	f.watchers[id] = pw
	f.mu.Unlock()
	return connect.NewResponse(&fspb.CreateWatcherResponse{WatcherId: id}), nil
}

func (f *fileSystem) pollWatcher(id string) (*pollWatcher, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pw := f.watchers[id]
	if pw == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("watcher %q not found", id))
	}
	return pw, nil
}

func (f *fileSystem) GetWatcherEvents(ctx context.Context, req *connect.Request[fspb.GetWatcherEventsRequest]) (*connect.Response[fspb.GetWatcherEventsResponse], error) {
	pw, err := f.pollWatcher(req.Msg.GetWatcherId())
	if err != nil {
		return nil, err
	}
	pw.mu.Lock()
	evs := pw.evs
	pw.evs = nil
	pw.mu.Unlock()
	return connect.NewResponse(&fspb.GetWatcherEventsResponse{Events: evs}), nil
}

func (f *fileSystem) RemoveWatcher(ctx context.Context, req *connect.Request[fspb.RemoveWatcherRequest]) (*connect.Response[fspb.RemoveWatcherResponse], error) {
	id := req.Msg.GetWatcherId()
	f.mu.Lock()
	pw := f.watchers[id]
	delete(f.watchers, id)
	f.mu.Unlock()
	if pw == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("watcher %q not found", id))
	}
	pw.stop()
	return connect.NewResponse(&fspb.RemoveWatcherResponse{}), nil
}
