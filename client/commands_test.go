package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/client/clienttest"
)

// play is a fake command: "fail" exits 2, "slow" times out, else echo.
func play(c clienttest.Command) clienttest.CommandOutput {
	line := strings.Join(c.Argv, " ")
	switch {
	case strings.Contains(line, "fail"):
		return clienttest.CommandOutput{Stdout: "partial\n", Stderr: "first\nno such thing\n", ExitCode: 2, Error: "exit status 2"}
	case strings.Contains(line, "slow"):
		return clienttest.CommandOutput{ExitCode: -1, Signal: "SIGKILL", TimedOut: true, Error: "the command ran past its timeout of 1s and was killed"}
	}
	return clienttest.CommandOutput{Stdout: "out: " + line + "\n" + c.Stdin, Stderr: "err\n"}
}

func TestCommandsRun(t *testing.T) {
	a, sb := start(t, clienttest.Options{RunCommand: play})
	ctx := t.Context()

	var chunks []string
	res, err := sb.Commands.Run(ctx, "echo 'a b' | wc", client.CommandOptions{
		Env: map[string]string{"X": "1"}, Cwd: "/tmp", User: "root", Timeout: 1500 * time.Millisecond,
		OnStdout: func(b []byte) { chunks = append(chunks, "o:"+string(b)) },
		OnStderr: func(b []byte) { chunks = append(chunks, "e:"+string(b)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "out: bash -l -c echo 'a b' | wc\n" || res.Stderr != "err\n" || res.ExitCode != 0 || res.PID == 0 {
		t.Errorf("result = %+v", res)
	}
	if d := cmp.Diff([]string{"o:" + res.Stdout, "e:err\n"}, chunks); d != "" {
		t.Errorf("callbacks (-want +got):\n%s", d)
	}
	reqs := a.Requests()
	want := `{"cmd":"echo 'a b' | wc","cwd":"/tmp","env":{"X":"1"},"timeout_ms":1500,"user":"root"}`
	if got := canonJSON(t, reqs[len(reqs)-1].Body); got != want {
		t.Errorf("request body = %s, want %s", got, want)
	}

	res, err = sb.Commands.RunArgv(ctx, []string{"printf", "%s", "$(id)"}, client.CommandOptions{Timeout: client.NoTimeout})
	if err != nil || res.Stdout != "out: printf %s $(id)\n" {
		t.Errorf("RunArgv = %+v, %v", res, err)
	}
	reqs = a.Requests()
	if got := canonJSON(t, reqs[len(reqs)-1].Body); got != `{"cmd":["printf","%s","$(id)"],"timeout_ms":0}` {
		t.Errorf("argv request = %s", got)
	}

	res, err = sb.Commands.Run(ctx, "fail")
	var ee *client.CommandExitError
	if !errors.As(err, &ee) || ee.Result != res || res.ExitCode != 2 || res.Stdout != "partial\n" {
		t.Fatalf("failing command = %+v, %v; want a *CommandExitError with the result", res, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "exited with code 2: no such thing") {
		t.Errorf("message = %q", msg)
	}
	if errors.Is(err, client.ErrTimeout) {
		t.Errorf("an exit code is not a timeout")
	}
	_, err = sb.Commands.Run(ctx, "slow")
	if !errors.As(err, &ee) || !ee.Result.TimedOut || !errors.Is(err, client.ErrTimeout) || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("timed out command = %v, want a *CommandExitError of class ErrTimeout", err)
	}

	for name, call := range map[string]func() error{
		"empty script": func() error { _, err := sb.Commands.Run(ctx, ""); return err },
		"empty argv":   func() error { _, err := sb.Commands.RunArgv(ctx, nil); return err },
		"two options": func() error {
			_, err := sb.Commands.Run(ctx, "x", client.CommandOptions{}, client.CommandOptions{})
			return err
		},
		"neg. timeout":  func() error { _, err := sb.Commands.Run(ctx, "x", client.CommandOptions{Timeout: -2}); return err },
		"unknown user":  func() error { _, err := sb.Commands.Run(ctx, "x", client.CommandOptions{User: "bob"}); return err },
		"start no argv": func() error { _, err := sb.Commands.StartArgv(ctx, []string{""}); return err },
	} {
		if err := call(); !errors.Is(err, client.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestCommandsBackgroundFake(t *testing.T) {
	a, sb := start(t, clienttest.Options{RunCommand: play})
	ctx := t.Context()

	h, err := sb.Commands.Start(ctx, "cat", client.CommandOptions{Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if res, done, err := h.Output(ctx); err != nil || done || res.PID != h.PID {
		t.Errorf("Output of a running command = %+v %t %v", res, done, err)
	}
	list, err := sb.Commands.List(ctx)
	if err != nil || len(list) != 1 || list[0].PID != h.PID || !list[0].Background || !list[0].Stdin {
		t.Errorf("List = %+v, %v", list, err)
	}
	if err := h.SendStdin(ctx, []byte("line 1\n")); err != nil {
		t.Fatal(err)
	}
	if err := h.CloseStdin(ctx); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	res, err := sb.Commands.Connect(h.PID, client.CommandOptions{OnStdout: func(b []byte) { got.Write(b) }}).Wait(ctx)
	if err != nil || res.Stdout != "out: bash -l -c cat\nline 1\n" || got.String() != res.Stdout {
		t.Errorf("Wait = %+v, %v (callback got %q)", res, err, got.String())
	}
	if res, done, err := h.Output(ctx); err != nil || !done || res.Stdout == "" {
		t.Errorf("Output after the end = %+v %t %v", res, done, err)
	}
	if err := h.Kill(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Kill of an ended command = %v, want ErrNotFound", err)
	}

	h, err = sb.Commands.StartArgv(ctx, []string{"sleep", "100"}, client.CommandOptions{Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Signal(ctx, "TERM"); err != nil {
		t.Fatal(err)
	}
	res, err = h.Wait(ctx)
	var ee *client.CommandExitError
	if !errors.As(err, &ee) || res.Signal != "SIGTERM" || res.ExitCode != -1 || !strings.Contains(err.Error(), "killed by SIGTERM") {
		t.Errorf("Wait after SIGTERM = %+v, %v", res, err)
	}
	if err := sb.Commands.Signal(ctx, 4242, "SIGFOO"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("signal to an unknown pid = %v", err)
	}

	// A caller that gives up on Run kills the command.
	ctx2, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = sb.Commands.Run(ctx2, "read line", client.CommandOptions{Stdin: true})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled context = %v", err)
	}
	reqs := a.Requests()
	if last := reqs[len(reqs)-1]; last.Method != "POST" || !strings.HasSuffix(last.Path, "/kill") {
		t.Errorf("last request = %v, want the kill of the abandoned command", last)
	}

	// A stream that breaks off before the end is an unavailable error.
	a.Override("POST /v1/commands", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"type":"start","pid":7}`+"\n"+`{"type":"stdout","data":"aGk="}`+"\n")
	})
	res, err = sb.Commands.Run(ctx, "x")
	if !errors.Is(err, client.ErrUnavailable) || res.Stdout != "hi" || !strings.Contains(err.Error(), "ended before the command") {
		t.Errorf("broken stream = %+v, %v", res, err)
	}
}
