package envd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "github.com/cubicle-dev/cubicle/internal/envd/spec/process"
	"github.com/cubicle-dev/cubicle/internal/envd/spec/process/processconnect"
)

// result is a process stream, decoded.
type result struct {
	pid                 uint32
	stdout, stderr, pty []byte
	end                 *pb.ProcessEvent_EndEvent
	kinds               []string // event kinds in order, repeats folded
	keepalives          int
	err                 error
}

// collect reads a Start or Connect stream to its end; onEvent, if set,
// sees every event as it comes.
func collect[T any](s *connect.ServerStreamForClient[T], get func(*T) *pb.ProcessEvent, onEvent func(*pb.ProcessEvent)) result {
	var res result
	for s.Receive() {
		ev := get(s.Msg())
		if onEvent != nil {
			onEvent(ev)
		}
		kind := "?"
		switch e := ev.GetEvent().(type) {
		case *pb.ProcessEvent_Start:
			kind, res.pid = "start", e.Start.GetPid()
		case *pb.ProcessEvent_Data:
			kind = "data"
			res.stdout = append(res.stdout, e.Data.GetStdout()...)
			res.stderr = append(res.stderr, e.Data.GetStderr()...)
			res.pty = append(res.pty, e.Data.GetPty()...)
		case *pb.ProcessEvent_End:
			kind, res.end = "end", e.End
		case *pb.ProcessEvent_Keepalive:
			kind = "keepalive"
			res.keepalives++
		}
		if n := len(res.kinds); n == 0 || res.kinds[n-1] != kind {
			res.kinds = append(res.kinds, kind)
		}
	}
	res.err = s.Err()
	s.Close()
	return res
}

func startEvent(r *pb.StartResponse) *pb.ProcessEvent     { return r.GetEvent() }
func connectEvent(r *pb.ConnectResponse) *pb.ProcessEvent { return r.GetEvent() }

// bash is a Start request as the SDK's commands.run sends it.
func bash(script string) *pb.StartRequest {
	return &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", script}}, Stdin: proto.Bool(false)}
}

func run(t *testing.T, c processconnect.ProcessClient, req *connect.Request[pb.StartRequest]) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := c.Start(ctx, req)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return collect(s, startEvent, nil)
}

func TestStartOutputAndExit(t *testing.T) {
	sb := startAgent(t)
	for _, codec := range codecs {
		t.Run(codec.name, func(t *testing.T) {
			c := sb.process(codec.opts...)
			tests := []struct {
				name, script   string
				stdout, stderr string
				exitCode       int32
				status         string
				wantErrorField bool
			}{
				{"success", "echo out; echo err >&2", "out\n", "err\n", 0, "exit status 0", false},
				{"failure", "echo partial; exit 3", "partial\n", "", 3, "exit status 3", true},
				{"killed", "kill -9 $$", "", "", -1, "signal: killed", true},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					res := run(t, c, connect.NewRequest(bash(tt.script)))
					if res.err != nil {
						t.Fatalf("stream: %v", res.err)
					}
					if res.kinds[0] != "start" || res.kinds[len(res.kinds)-1] != "end" || res.pid == 0 {
						t.Errorf("events %v (pid %d), want start first and end last", res.kinds, res.pid)
					}
					if string(res.stdout) != tt.stdout || string(res.stderr) != tt.stderr {
						t.Errorf("stdout %q stderr %q, want %q %q", res.stdout, res.stderr, tt.stdout, tt.stderr)
					}
					e := res.end
					if e.GetExitCode() != tt.exitCode || e.GetStatus() != tt.status || e.Error != nil != tt.wantErrorField {
						t.Errorf("end = %v, want exit %d status %q error set %v", e, tt.exitCode, tt.status, tt.wantErrorField)
					}
					if e.GetExited() != (tt.exitCode >= 0) {
						t.Errorf("exited = %v for exit code %d", e.GetExited(), tt.exitCode)
					}
				})
			}
		})
	}
}

func TestEnvUserAndCwd(t *testing.T) {
	t.Setenv("CUBICLE_SANDBOX_TEST_VAR", "from-sandbox")
	sb := startAgent(t)
	c := sb.process(connect.WithProtoJSON())
	home := sb.home(t)

	req := bash(`echo "$CUBICLE_SANDBOX_TEST_VAR $CALL_VAR $DISPLAY"; echo "$HOME"; pwd; id -u`)
	req.Process.Envs = map[string]string{"CALL_VAR": "from-call"}
	res := run(t, c, connect.NewRequest(req))
	uid := fmt.Sprint(syscall.Geteuid())
	if sb.user != nil {
		uid = fmt.Sprint(sb.user.UID)
	}
	want := fmt.Sprintf("from-sandbox from-call :4986\n%s\n%s\n%s\n", home, home, uid)
	if string(res.stdout) != want {
		t.Errorf("default user: stdout %q, want %q (stderr %q)", res.stdout, want, res.stderr)
	}

	// A call's variable wins over the sandbox's; cwd is relative to home.
	req = bash(`echo "$CUBICLE_SANDBOX_TEST_VAR"; pwd`)
	req.Process.Envs = map[string]string{"CUBICLE_SANDBOX_TEST_VAR": "overridden"}
	req.Process.Cwd = proto.String("/tmp")
	res = run(t, c, connect.NewRequest(req))
	if string(res.stdout) != "overridden\n/tmp\n" {
		t.Errorf("override: stdout %q", res.stdout)
	}

	if syscall.Geteuid() == 0 {
		res = run(t, c, asUser(connect.NewRequest(bash(`id -u; echo $HOME; pwd`)), "root"))
		if string(res.stdout) != "0\n/root\n/root\n" {
			t.Errorf("as root: stdout %q", res.stdout)
		}
		res = run(t, c, asUser(connect.NewRequest(bash(`id -un`)), "user"))
		if string(res.stdout) != "nobody\n" {
			t.Errorf(`as "user": stdout %q, want the desktop user nobody`, res.stdout)
		}
	}

	errTests := []struct {
		name string
		req  *connect.Request[pb.StartRequest]
		code connect.Code
	}{
		{"unknown user", asUser(connect.NewRequest(bash("true")), "no-such-user"), connect.CodeUnauthenticated},
		{"missing cwd", connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "/bin/true", Cwd: proto.String("/no/such/dir")}}), connect.CodeInvalidArgument},
		{"no command", connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{}}), connect.CodeInvalidArgument},
		{"missing program", connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "no-such-program-xyz"}}), connect.CodeNotFound},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Start(context.Background(), tt.req)
			if err == nil {
				res := collect(s, startEvent, nil)
				err = res.err
			}
			if got := codeOf(err); got != tt.code {
				t.Errorf("code %v (%v), want %v", got, err, tt.code)
			}
		})
	}
}

func TestKeepalive(t *testing.T) {
	sb := startAgent(t)
	c := sb.process(connect.WithProtoJSON())
	req := connect.NewRequest(bash("sleep 3; echo done"))
	req.Header().Set("Keepalive-Ping-Interval", "1")
	res := run(t, c, req)
	if res.keepalives == 0 || res.kinds[0] != "start" || res.end == nil || string(res.stdout) != "done\n" {
		t.Errorf("events %v with %d keepalives, stdout %q; want keepalives between start and end", res.kinds, res.keepalives, res.stdout)
	}
}

func TestTimeoutKills(t *testing.T) {
	sb := startAgent(t)
	c := sb.process(connect.WithProtoJSON())
	// The client sends Connect-Timeout-Ms from its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := c.Start(ctx, connect.NewRequest(bash("sleep 120")))
	if err != nil {
		t.Fatal(err)
	}
	res := collect(s, startEvent, nil)
	if code := codeOf(res.err); code != connect.CodeDeadlineExceeded {
		t.Errorf("stream error %v, want deadline_exceeded", res.err)
	}
	if res.pid == 0 {
		t.Fatal("no start event")
	}
	waitFor(t, "the timed-out process to be gone", func() bool {
		return !listed(t, c, res.pid) && errors.Is(syscall.Kill(int(res.pid), 0), syscall.ESRCH)
	})
}

// listed reports whether List shows pid.
func listed(t *testing.T, c processconnect.ProcessClient, pid uint32) bool {
	t.Helper()
	return listInfo(t, c, pid) != nil
}

func listInfo(t *testing.T, c processconnect.ProcessClient, pid uint32) *pb.ProcessInfo {
	t.Helper()
	resp, err := c.List(context.Background(), connect.NewRequest(&pb.ListRequest{}))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, p := range resp.Msg.GetProcesses() {
		if p.GetPid() == pid {
			return p
		}
	}
	return nil
}

// startDetached starts req, reads its start event and disconnects.
func startDetached(t *testing.T, c processconnect.ProcessClient, req *pb.StartRequest) uint32 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.Start(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() {
		t.Fatalf("no start event: %v", s.Err())
	}
	pid := s.Msg().GetEvent().GetStart().GetPid()
	if pid == 0 {
		t.Fatalf("first event %v, want start", s.Msg())
	}
	cancel()
	s.Close()
	return pid
}

func TestDetachedProcessAndReconnect(t *testing.T) {
	sb := startAgent(t)
	for _, codec := range codecs {
		t.Run(codec.name, func(t *testing.T) {
			c := sb.process(codec.opts...)
			req := bash(`read line; echo "got $line"; cat; echo "closed"`)
			req.Stdin = proto.Bool(true)
			req.Tag = proto.String("reader-" + codec.name)
			pid := startDetached(t, c, req)

			// The client went away; the process runs on and is listed.
			time.Sleep(100 * time.Millisecond)
			info := listInfo(t, c, pid)
			if info == nil || info.GetTag() != "reader-"+codec.name || info.GetConfig().GetCmd() != "/bin/bash" {
				t.Fatalf("List entry for %d = %v, want it with its tag and config", pid, info)
			}

			// Reconnect by tag, then feed stdin and close it.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := c.Connect(ctx, connect.NewRequest(&pb.ConnectRequest{Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Tag{Tag: "reader-" + codec.name}}}))
			if err != nil {
				t.Fatal(err)
			}
			started := make(chan struct{})
			done := make(chan result, 1)
			go func() {
				done <- collect(s, connectEvent, func(ev *pb.ProcessEvent) {
					if ev.GetStart() != nil {
						close(started)
					}
				})
			}()
			<-started
			send := func(data string) {
				t.Helper()
				_, err := c.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{
					Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}},
					Input:   &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte(data)}},
				}))
				if err != nil {
					t.Fatalf("SendInput: %v", err)
				}
			}
			send("hello\n")
			send("more\n")
			if _, err := c.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}})); err != nil {
				t.Fatalf("CloseStdin: %v", err)
			}
			res := <-done
			if res.err != nil || res.pid != pid || res.end.GetExitCode() != 0 {
				t.Fatalf("Connect stream: pid %d end %v err %v", res.pid, res.end, res.err)
			}
			if want := "got hello\nmore\nclosed\n"; string(res.stdout) != want {
				t.Errorf("stdout after reconnecting %q, want %q", res.stdout, want)
			}
			// Ended: gone from List and from SendInput.
			if listed(t, c, pid) {
				t.Errorf("ended process %d is still listed", pid)
			}
			_, err = c.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{
				Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}},
				Input:   &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("x")}},
			}))
			if codeOf(err) != connect.CodeNotFound {
				t.Errorf("SendInput to an ended process: %v, want not_found", err)
			}
		})
	}
}

func TestStdinAbsentByDefault(t *testing.T) {
	sb := startAgent(t)
	c := sb.process(connect.WithProtoJSON())
	res := run(t, c, connect.NewRequest(bash("cat; echo eof")))
	if string(res.stdout) != "eof\n" {
		t.Errorf("stdout %q: stdin should be /dev/null without stdin:true", res.stdout)
	}
	pid := startDetached(t, c, bash("sleep 60"))
	_, err := c.SendInput(context.Background(), connect.NewRequest(&pb.SendInputRequest{
		Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}},
		Input:   &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("x")}},
	}))
	if codeOf(err) != connect.CodeInternal {
		t.Errorf("SendInput without stdin: %v, want internal", err)
	}
}

func TestSendSignal(t *testing.T) {
	sb := startAgent(t)
	c := sb.process(connect.WithProtoJSON())
	tests := []struct {
		signal pb.Signal
		status string
	}{
		{pb.Signal_SIGNAL_SIGTERM, "signal: terminated"},
		{pb.Signal_SIGNAL_SIGKILL, "signal: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.signal.String(), func(t *testing.T) {
			pid := startDetached(t, c, bash("sleep 120"))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := c.Connect(ctx, connect.NewRequest(&pb.ConnectRequest{Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}}))
			if err != nil {
				t.Fatal(err)
			}
			if !s.Receive() {
				t.Fatal(s.Err())
			}
			sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}
			if _, err := c.SendSignal(ctx, connect.NewRequest(&pb.SendSignalRequest{Process: sel, Signal: tt.signal})); err != nil {
				t.Fatalf("SendSignal: %v", err)
			}
			res := collect(s, connectEvent, nil)
			if res.end.GetExitCode() != -1 || res.end.GetStatus() != tt.status || res.end.GetExited() {
				t.Errorf("end %v, want exit -1 and status %q", res.end, tt.status)
			}
			_, err = c.SendSignal(ctx, connect.NewRequest(&pb.SendSignalRequest{Process: sel, Signal: tt.signal}))
			if codeOf(err) != connect.CodeNotFound {
				t.Errorf("signal to an ended process: %v, want not_found", err)
			}
		})
	}
}

func TestPTY(t *testing.T) {
	sb := startAgent(t)
	c := sb.process(connect.WithProtoJSON())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req := &pb.StartRequest{
		Process: &pb.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-c", `tty; stty size; read x; echo "in=$x"; stty size`}, Envs: map[string]string{"TERM": "xterm-256color"}},
		Pty:     &pb.PTY{Size: &pb.PTY_Size{Cols: 100, Rows: 30}},
	}
	s, err := c.Start(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	var pid uint32
	var out bytes.Buffer
	sawFirstSize := make(chan struct{})
	done := make(chan result, 1)
	go func() {
		closed := false
		done <- collect(s, startEvent, func(ev *pb.ProcessEvent) {
			if st := ev.GetStart(); st != nil {
				pid = st.GetPid()
			}
			out.Write(ev.GetData().GetPty())
			if !closed && strings.Contains(out.String(), "30 100") {
				closed = true
				close(sawFirstSize)
			}
		})
	}()
	select {
	case <-sawFirstSize:
	case r := <-done:
		t.Fatalf("ended before printing its size: %q %v", r.pty, r.err)
	}
	sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}
	if _, err := c.Update(ctx, connect.NewRequest(&pb.UpdateRequest{Process: sel, Pty: &pb.PTY{Size: &pb.PTY_Size{Cols: 120, Rows: 40}}})); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if _, err := c.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{Process: sel})); codeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("CloseStdin on a terminal: %v, want failed_precondition", err)
	}
	if _, err := c.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: sel, Input: &pb.ProcessInput{Input: &pb.ProcessInput_Pty{Pty: []byte("typed\r")}}})); err != nil {
		t.Fatalf("SendInput: %v", err)
	}
	res := <-done
	got := strings.ReplaceAll(string(res.pty), "\r\n", "\n")
	for _, want := range []string{"/dev/pts/", "30 100\n", "in=typed\n", "40 120\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output %q lacks %q", got, want)
		}
	}
	if len(res.stdout) != 0 || len(res.stderr) != 0 || res.end.GetExitCode() != 0 {
		t.Errorf("stdout %q stderr %q end %v; want all output on the terminal and exit 0", res.stdout, res.stderr, res.end)
	}
}

func TestListAndTags(t *testing.T) {
	sb := startAgent(t)
	c := sb.process()
	a := startDetached(t, c, &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "sleep", Args: []string{"60"}}, Tag: proto.String("a")})
	b := startDetached(t, c, &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "sleep", Args: []string{"61"}, Envs: map[string]string{"K": "V"}}})
	resp, err := c.List(context.Background(), connect.NewRequest(&pb.ListRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var pids []uint32
	for _, p := range resp.Msg.GetProcesses() {
		pids = append(pids, p.GetPid())
		if p.GetConfig() == nil {
			t.Errorf("process %d has no config", p.GetPid())
		}
		if p.GetPid() == b && (p.GetConfig().GetEnvs()["K"] != "V" || !slices.Equal(p.GetConfig().GetArgs(), []string{"61"}) || p.Tag != nil) {
			t.Errorf("process %d listed as %v", b, p)
		}
	}
	if !slices.Contains(pids, a) || !slices.Contains(pids, b) {
		t.Errorf("List pids %v, want %d and %d", pids, a, b)
	}
	kill := &pb.SendSignalRequest{Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Tag{Tag: "a"}}, Signal: pb.Signal_SIGNAL_SIGKILL}
	if _, err := c.SendSignal(context.Background(), connect.NewRequest(kill)); err != nil {
		t.Fatalf("kill by tag: %v", err)
	}
	waitFor(t, "the tagged process to leave the list", func() bool { return !listed(t, c, a) })
	if _, err := c.SendSignal(context.Background(), connect.NewRequest(kill)); codeOf(err) != connect.CodeNotFound {
		t.Errorf("kill of an ended tag: %v, want not_found", err)
	}
}

func TestStreamInput(t *testing.T) {
	sb := startAgent(t)
	c := sb.process() // client streaming needs a body that streams: binary over HTTP/1.1 works with connect-go
	req := bash("head -c 6; echo")
	req.Stdin = proto.Bool(true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := c.Start(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() {
		t.Fatal(s.Err())
	}
	pid := s.Msg().GetEvent().GetStart().GetPid()
	in := c.StreamInput(ctx)
	sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}
	msgs := []*pb.StreamInputRequest{
		{Event: &pb.StreamInputRequest_Start{Start: &pb.StreamInputRequest_StartEvent{Process: sel}}},
		{Event: &pb.StreamInputRequest_Data{Data: &pb.StreamInputRequest_DataEvent{Input: &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("abc")}}}}},
		{Event: &pb.StreamInputRequest_Keepalive{Keepalive: &pb.StreamInputRequest_KeepAlive{}}},
		{Event: &pb.StreamInputRequest_Data{Data: &pb.StreamInputRequest_DataEvent{Input: &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("def")}}}}},
	}
	for _, m := range msgs {
		if err := in.Send(m); err != nil {
			t.Fatalf("StreamInput send: %v", err)
		}
	}
	if _, err := in.CloseAndReceive(); err != nil {
		t.Fatalf("StreamInput: %v", err)
	}
	res := collect(s, startEvent, nil)
	if string(res.stdout) != "abcdef\n" {
		t.Errorf("stdout %q, want abcdef", res.stdout)
	}
}

func TestProcessTokenRequired(t *testing.T) {
	sb := startAgent(t)
	for _, token := range []string{"", "wrong"} {
		c := processconnect.NewProcessClient(httpClient(token), sb.base, connect.WithProtoJSON())
		_, err := c.List(context.Background(), connect.NewRequest(&pb.ListRequest{}))
		if codeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("List with token %q: %v, want unauthenticated", token, err)
		}
		s, err := c.Start(context.Background(), connect.NewRequest(bash("echo no")))
		if err == nil {
			err = collect(s, startEvent, nil).err
		}
		if codeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("Start with token %q: %v, want unauthenticated", token, err)
		}
	}
}
