package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/internal/agent"
	"github.com/cubicle-dev/cubicle/internal/display"
)

// sdkSandbox runs a real agent (attached to a display nobody serves: the
// command and file API need none) and returns the SDK's handle on it.
func sdkSandbox(t *testing.T) *client.Sandbox {
	t.Helper()
	const token = "sdk-token"
	a, err := agent.New(agent.Config{Display: display.Config{Display: 4986}, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	sb, err := client.ConnectAgent(ln.Addr().String(), client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sb.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return sb
}

func TestSDKCommands(t *testing.T) {
	sb := sdkSandbox(t)
	ctx := t.Context()

	res, err := sb.Commands.RunArgv(ctx, []string{"sh", "-c", `echo "$A"; echo oops >&2; exit 3`}, client.CommandOptions{Env: map[string]string{"A": "x y"}})
	var ee *client.CommandExitError
	if !errors.As(err, &ee) || res.ExitCode != 3 || res.Stdout != "x y\n" || res.Stderr != "oops\n" || !strings.Contains(err.Error(), "code 3: oops") {
		t.Errorf("RunArgv = %+v, %v", res, err)
	}

	// 10 MB through the callbacks, in order and whole.
	sum := sha256.New()
	var n int
	res, err = sb.Commands.RunArgv(ctx, []string{"sh", "-c", "seq 1 1500000"}, client.CommandOptions{
		OnStdout: func(b []byte) { sum.Write(b); n += len(b) },
	})
	var want bytes.Buffer
	for i := 1; i <= 1500000; i++ {
		want.WriteString(itoa(i))
		want.WriteByte('\n')
	}
	if err != nil || n != want.Len() || len(res.Stdout) != n || !bytes.Equal(sum.Sum(nil), sha256Of(want.Bytes())) {
		t.Errorf("seq: %d bytes through the callback, %d in the result, %v; want %d", n, len(res.Stdout), err, want.Len())
	}

	_, err = sb.Commands.RunArgv(ctx, []string{"sleep", "30"}, client.CommandOptions{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, client.ErrTimeout) || !errors.As(err, &ee) || ee.Result.Signal != "SIGKILL" {
		t.Errorf("timeout = %v, want a *CommandExitError of class ErrTimeout", err)
	}

	h, err := sb.Commands.StartArgv(ctx, []string{"sh", "-c", "while read l; do echo got $l; done; echo bye"}, client.CommandOptions{Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"a\n", "b\n"} {
		if err := h.SendStdin(ctx, []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.CloseStdin(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = h.Wait(ctx)
	if err != nil || res.Stdout != "got a\ngot b\nbye\n" {
		t.Errorf("stdin round trip = %+v, %v", res, err)
	}

	h, err = sb.Commands.Start(ctx, "exec sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	list, err := sb.Commands.List(ctx)
	if err != nil || len(list) != 1 || list[0].PID != h.PID || list[0].Cmd[3] != "exec sleep 30" {
		t.Errorf("List = %+v, %v", list, err)
	}
	if err := h.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := h.Wait(ctx); !errors.As(err, &ee) || res.Signal != "SIGKILL" {
		t.Errorf("Wait after Kill = %+v, %v", res, err)
	}
	if err := h.Kill(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("second Kill = %v, want ErrNotFound", err)
	}
	if _, err := sb.Commands.Run(ctx, "true", client.CommandOptions{User: "mallory"}); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("unknown user = %v, want ErrInvalid", err)
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func TestSDKFiles(t *testing.T) {
	sb := sdkSandbox(t)
	ctx := t.Context()
	dir := t.TempDir()

	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	info, err := sb.Files.WriteFrom(ctx, dir+"/x/big.bin", io.MultiReader(bytes.NewReader(big[:1]), bytes.NewReader(big[1:])))
	if err != nil || info.Size != int64(len(big)) || info.Path != dir+"/x/big.bin" {
		t.Fatalf("WriteFrom = %+v, %v", info, err)
	}
	got, err := sb.Files.Read(ctx, dir+"/x/big.bin")
	if err != nil || !bytes.Equal(got, big) {
		t.Errorf("Read = %d bytes, %v; want the %d written", len(got), err, len(big))
	}
	if made, err := sb.Files.MakeDir(ctx, dir+"/x/y"); !made || err != nil {
		t.Errorf("MakeDir = %t, %v", made, err)
	}
	if made, err := sb.Files.MakeDir(ctx, dir+"/x/y"); made || err != nil {
		t.Errorf("MakeDir again = %t, %v", made, err)
	}
	list, err := sb.Files.List(ctx, dir+"/x", 1)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	for _, e := range list {
		if (e.Name == "big.bin" && (e.Type != "file" || e.Size != int64(len(big)))) || (e.Name == "y" && e.Type != "dir") {
			t.Errorf("entry %+v", e)
		}
	}
	if ok, err := sb.Files.Exists(ctx, dir+"/x/big.bin"); !ok || err != nil {
		t.Errorf("Exists = %t, %v", ok, err)
	}
	if err := sb.Files.Remove(ctx, dir+"/x"); err != nil {
		t.Fatal(err)
	}
	if ok, err := sb.Files.Exists(ctx, dir+"/x/big.bin"); ok || err != nil {
		t.Errorf("Exists after Remove = %t, %v", ok, err)
	}
	if _, err := os.Stat(dir + "/x"); !os.IsNotExist(err) {
		t.Errorf("the directory is still there: %v", err)
	}
	if _, err := sb.Files.Read(ctx, "/proc/self/root/etc/hostname"); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("magic link = %v, want ErrInvalid", err)
	}
	if _, err := sb.Files.Read(ctx, dir+"/nope"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("missing = %v, want ErrNotFound", err)
	}
}
