package client_test

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/client/clienttest"
)

func TestFilesFake(t *testing.T) {
	a, sb := start(t, clienttest.Options{Files: map[string][]byte{"/etc/hostname": []byte("box\n")}})
	ctx := t.Context()

	data := []byte{0, 1, 2, 0xff, '\n'}
	info, err := sb.Files.Write(ctx, "~/dir/a.bin", data)
	if err != nil || *info != (client.WriteInfo{Path: "/home/user/dir/a.bin", Size: 5}) {
		t.Fatalf("Write = %+v, %v", info, err)
	}
	if got, ok := a.File("/home/user/dir/a.bin"); !ok || !bytes.Equal(got, data) {
		t.Errorf("the fake holds %q", got)
	}
	got, err := sb.Files.Read(ctx, "/home/user/dir/a.bin")
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("Read = %q, %v", got, err)
	}
	var buf bytes.Buffer
	if n, err := sb.Files.ReadTo(ctx, "/etc/hostname", &buf); err != nil || n != 4 || buf.String() != "box\n" {
		t.Errorf("ReadTo = %d %q %v", n, buf.String(), err)
	}
	if _, err := sb.Files.WriteFrom(ctx, "/tmp/s.txt", strings.NewReader("streamed")); err != nil {
		t.Fatal(err)
	}

	made, err := sb.Files.MakeDir(ctx, "/home/user/dir/sub")
	if err != nil || !made {
		t.Errorf("MakeDir new = %t, %v", made, err)
	}
	if made, err := sb.Files.MakeDir(ctx, "/home/user/dir/sub"); err != nil || made {
		t.Errorf("MakeDir existing = %t, %v", made, err)
	}
	if _, err := sb.Files.MakeDir(ctx, "/home/user/dir/a.bin"); !errors.Is(err, client.ErrConflict) {
		t.Errorf("MakeDir on a file = %v, want ErrConflict", err)
	}

	list, err := sb.Files.List(ctx, "/home/user", 2)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Type+" "+e.Path+" "+e.Mode.String())
	}
	want := []string{"dir /home/user/dir -rwxr-xr-x", "file /home/user/dir/a.bin -rw-r--r--", "dir /home/user/dir/sub -rwxr-xr-x"}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("List (-want +got):\n%s", d)
	}
	st, err := sb.Files.Stat(ctx, "/home/user/dir/a.bin")
	if err != nil || st.Size != 5 || st.Type != "file" || st.Mode != fs.FileMode(0o644) || st.ModTime.IsZero() {
		t.Errorf("Stat = %+v, %v", st, err)
	}
	for p, want := range map[string]bool{"/etc/hostname": true, "/home/user/dir": true, "/nope": false} {
		if ok, err := sb.Files.Exists(ctx, p); ok != want || err != nil {
			t.Errorf("Exists(%s) = %t, %v", p, ok, err)
		}
	}

	if err := sb.Files.Remove(ctx, "/home/user/dir"); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Files.Read(ctx, "/home/user/dir/a.bin"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Read after Remove = %v, want ErrNotFound", err)
	}
	if err := sb.Files.Remove(ctx, "/home/user/dir"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Remove twice = %v, want ErrNotFound", err)
	}
	for name, err := range map[string]error{
		"relative":  func() error { _, err := sb.Files.Read(ctx, "etc/hostname"); return err }(),
		"empty":     func() error { _, err := sb.Files.Read(ctx, ""); return err }(),
		"read dir":  func() error { _, err := sb.Files.Read(ctx, "/etc"); return err }(),
		"list file": func() error { _, err := sb.Files.List(ctx, "/etc/hostname", 1); return err }(),
	} {
		if !errors.Is(err, client.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}

	a.ClearRequests()
	sb.Files.AsUser("root").Read(ctx, "/etc/hostname")
	if reqs := a.Requests(); len(reqs) != 1 || reqs[0].Query.Get("user") != "root" || reqs[0].Query.Get("path") != "/etc/hostname" {
		t.Errorf("AsUser(root) sent %v", reqs)
	}
}
