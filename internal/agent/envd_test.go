package agent

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/display"
	pb "github.com/cubicle-dev/cubicle/internal/envd/spec/process"
	"github.com/cubicle-dev/cubicle/internal/envd/spec/process/processconnect"
)

// tokenTransport adds an access token to every request.
type tokenTransport string

func (tt tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Access-Token", string(tt))
	return http.DefaultTransport.RoundTrip(r)
}

// externalDisplayNumber picks a display number nobody uses, away from
// the ones other tests pick.
func externalDisplayNumber(t *testing.T) int {
	for n := 700 + os.Getpid()%100; n < 900; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		if c, err := net.Dial("unix", fmt.Sprintf("@/tmp/.X11-unix/X%d", n)); err == nil {
			c.Close()
			continue
		}
		return n
	}
	t.Fatal("no free display number")
	return 0
}

func TestDisplayModeValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", Config{}, true},
		{"managed", Config{DisplayMode: DisplayManaged}, true},
		{"external", Config{DisplayMode: DisplayExternal}, true},
		{"external and managed", Config{DisplayMode: DisplayExternal, Manage: true, Display: display.Config{Display: 1}}, false},
		{"unknown", Config{DisplayMode: "remote"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// TestExternalDisplay starts an agent that runs no display, starts Xvfb
// through envd the way @e2b/desktop does (only the abstract socket, as the
// desktop user), and checks that the desktop API attaches to it.
func TestExternalDisplay(t *testing.T) {
	if _, err := os.Stat("/usr/bin/Xvfb"); err != nil {
		t.Skip("Xvfb is not installed (apt-get install xvfb)")
	}
	const tok = "ext-token"
	n := externalDisplayNumber(t)
	cfg := Config{DisplayMode: DisplayExternal, Token: tok, Display: display.Config{Display: n}}
	if os.Geteuid() == 0 {
		cfg.Display.User = testUser(t)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()

	// envd answers at once; the desktop waits for a display.
	if status, _, _ := call(t, "GET", base+"/health", "", ""); status != http.StatusNoContent {
		t.Errorf("GET /health = %d, want 204", status)
	}
	if status, e, raw := call(t, "GET", base+"/v1/screenshot", tok, ""); status != http.StatusServiceUnavailable || e.Error.Code != desktop.CodeNotReady {
		t.Errorf("screenshot before any display: %d %s, want 503 not_ready", status, raw)
	}

	c := processconnect.NewProcessClient(&http.Client{Transport: tokenTransport(tok)}, base, connect.WithProtoJSON())
	ctx, cancel := context.WithCancel(context.Background())
	script := fmt.Sprintf("Xvfb :%d -ac -screen 0 1024x768x24 -retro -dpi 96 -nolisten tcp -nolisten unix", n)
	s, err := c.Start(ctx, connect.NewRequest(&pb.StartRequest{
		Process: &pb.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", script}},
		Stdin:   proto.Bool(false),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() || s.Msg().GetEvent().GetStart() == nil {
		t.Fatalf("first event %v (%v), want start", s.Msg(), s.Err())
	}
	pid := s.Msg().GetEvent().GetStart().GetPid()
	cancel() // disconnect at once, as the SDK does with background commands
	s.Close()

	var png []byte
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, _, raw := call(t, "GET", base+"/v1/screenshot", tok, "")
		if status == http.StatusOK {
			png = raw
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the desktop API never attached to the display: %d %s", status, raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot is not a PNG: %q", png[:min(len(png), 16)])
	}
	if status, _, raw := call(t, "GET", base+"/v1/screen", tok, ""); status != http.StatusOK || !bytes.Contains(raw, []byte(`"width":1024`)) {
		t.Errorf("GET /v1/screen = %d %s, want 1024 wide", status, raw)
	}

	// Xvfb runs as the desktop user, and it is still envd's process.
	list, err := c.List(context.Background(), connect.NewRequest(&pb.ListRequest{}))
	if err != nil || len(list.Msg.GetProcesses()) != 1 || list.Msg.GetProcesses()[0].GetPid() != pid {
		t.Errorf("List = %v %v, want the Xvfb process %d", list.Msg.GetProcesses(), err, pid)
	}
	if u := cfg.Display.User; u != nil {
		st, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Sys().(*syscall.Stat_t).Uid; got != u.UID {
			t.Errorf("Xvfb runs as uid %d, want the desktop user's %d", got, u.UID)
		}
	}
}
