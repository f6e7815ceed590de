package envd_test

import (
	"context"
	"encoding/base64"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jezek/xgb"

	"github.com/cubicle-dev/cubicle/internal/agent"
	"github.com/cubicle-dev/cubicle/internal/display"
	"github.com/cubicle-dev/cubicle/internal/envd/spec/filesystem/filesystemconnect"
	"github.com/cubicle-dev/cubicle/internal/envd/spec/process/processconnect"
)

func TestMain(m *testing.M) {
	// xgb logs a line for every connection made without an .Xauthority.
	xgb.Logger = log.New(io.Discard, "", 0)
	raiseInotifyInstances()
	os.Exit(m.Run())
}

// raiseInotifyInstances makes room for the watch tests: every XFCE session
// on the host holds inotify instances, and the per-user default of 128 is
// soon used up by the desktops of other tests running at the same time.
// Only root can, and the limit is only ever raised.
func raiseInotifyInstances() {
	const file, want = "/proc/sys/fs/inotify/max_user_instances", 1024
	b, err := os.ReadFile(file)
	if err != nil || os.Geteuid() != 0 {
		return
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < want {
		os.WriteFile(file, []byte(strconv.Itoa(want)), 0o644)
	}
}

const testToken = "test-token-0123456789"

// sandbox is a real agent serving envd on a loopback port.
type sandbox struct {
	base string
	user *display.User // the desktop user; nil: the agent's own
}

// startAgent runs an agent with the access token testToken, attached to a
// display nobody serves (envd needs none). When the test runs as root the
// desktop user is "nobody" with a fresh home of its own.
func startAgent(t *testing.T) *sandbox {
	t.Helper()
	sb := &sandbox{}
	if os.Geteuid() == 0 {
		home, err := os.MkdirTemp("", "cubicle-envd-home-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(home) })
		if err := os.Chmod(home, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(home, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		sb.user = &display.User{UID: 65534, GID: 65534, Name: "nobody", Home: home}
	}
	a, err := agent.New(agent.Config{Token: testToken, Display: display.Config{Display: 4986, User: sb.user}})
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
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	sb.base = "http://" + ln.Addr().String()
	return sb
}

// home is the desktop user's home.
func (sb *sandbox) home(t *testing.T) string {
	if sb.user != nil {
		return sb.user.Home
	}
	h, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// tokenTransport adds the access token to every request.
type tokenTransport struct{ token string }

func (tt tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if tt.token != "" {
		r.Header.Set("X-Access-Token", tt.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func httpClient(token string) *http.Client {
	return &http.Client{Transport: tokenTransport{token}}
}

// codecs are the encodings and protocols a client may use.
var codecs = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect-json", []connect.ClientOption{connect.WithProtoJSON()}},
	{"connect-proto", nil},
	{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
}

func (sb *sandbox) process(opts ...connect.ClientOption) processconnect.ProcessClient {
	return processconnect.NewProcessClient(httpClient(testToken), sb.base, opts...)
}

func (sb *sandbox) fs(opts ...connect.ClientOption) filesystemconnect.FilesystemClient {
	return filesystemconnect.NewFilesystemClient(httpClient(testToken), sb.base, opts...)
}

// asUser names the envd user of a request, as the SDK does.
func asUser[T any](req *connect.Request[T], name string) *connect.Request[T] {
	req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(name+":")))
	return req
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func codeOf(err error) connect.Code {
	return connect.CodeOf(err)
}
