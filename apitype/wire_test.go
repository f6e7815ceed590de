package apitype

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestEncode pins what a request or answer looks like on the wire: fields
// the server defaults are left out when zero, and those whose zero means
// something are kept.
func TestEncode(t *testing.T) {
	no, five := false, 5
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"empty create", CreateRequest{}, `{}`},
		{"create without internet", CreateRequest{Network: &Network{}}, `{"network":{"internet":false}}`},
		{"create", CreateRequest{Template: "desktop", Resolution: Resolution{800, 600}, TimeoutS: 60, Limits: Limits{MemoryMB: 512}},
			`{"template":"desktop","resolution":{"width":800,"height":600},"timeout_s":60,"limits":{"memory_mb":512}}`},
		{"answer network keeps empty lists", Network{Internet: true, AllowOut: []string{}, DenyOut: []string{}},
			`{"internet":true,"allow_out":[],"deny_out":[]}`},
		{"connect without timeout", ConnectRequest{}, `{}`},
		{"timeout", TimeoutRequest{TimeoutS: &five}, `{"timeout_s":5}`},
		{"clear metadata", MetadataRequest{Metadata: map[string]string{}}, `{"metadata":{}}`},
		{"script", CommandRequest{Cmd: &CommandLine{Script: "echo hi"}}, `{"cmd":"echo hi"}`},
		{"argv, no timeout", CommandRequest{Cmd: &CommandLine{Argv: []string{"ls", "-l"}}, TimeoutMS: new(int64)},
			`{"cmd":["ls","-l"],"timeout_ms":0}`},
		{"start event", CommandEvent{Type: EventStart, PID: 7}, `{"type":"start","pid":7}`},
		{"stdout event", CommandEvent{Type: EventStdout, Data: []byte("hi\n")}, `{"type":"stdout","data":"aGkK"}`},
		{"end event, exit 0", CommandEvent{Type: EventEnd, CommandEnd: &CommandEnd{}}, `{"type":"end","exit_code":0}`},
		{"end event, timed out", CommandEvent{Type: EventEnd, CommandEnd: &CommandEnd{ExitCode: -1, Signal: "SIGKILL", TimedOut: true}},
			`{"type":"end","exit_code":-1,"signal":"SIGKILL","timed_out":true}`},
		{"close stdin", StdinRequest{Close: true}, `{"close":true}`},
		{"stream URL without auto connect", StreamURLRequest{AutoConnect: &no}, `{"view_only":false,"auto_connect":false}`},
		{"stream URL", StreamURL{Token: "s3cret", TokenID: "ab", ExpiresAt: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)},
			`{"url":"","websocket_url":"","token":"s3cret","token_id":"ab","sandbox_id":"","view_only":false,"expires_at":"2026-01-02T03:04:05.006Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestCreateDefaults checks that a create body decoded over the server's
// defaults keeps those the client left out, and that "network" given
// without "internet" leaves the internet on.
func TestCreateDefaults(t *testing.T) {
	defaults := func() CreateRequest {
		return CreateRequest{Template: "desktop", Resolution: Resolution{1024, 768}, DPI: 96, TimeoutS: 300, Network: &Network{Internet: true}}
	}
	tests := []struct {
		name string
		body string
		want CreateRequest
	}{
		{"empty", `{}`, defaults()},
		{"nulls", `{"resolution":null,"limits":null}`, defaults()},
		{"width only", `{"resolution":{"width":800}}`,
			CreateRequest{Template: "desktop", Resolution: Resolution{800, 768}, DPI: 96, TimeoutS: 300, Network: &Network{Internet: true}}},
		{"allow list only", `{"network":{"allow_out":["10.0.0.0/8"]}}`,
			CreateRequest{Template: "desktop", Resolution: Resolution{1024, 768}, DPI: 96, TimeoutS: 300,
				Network: &Network{Internet: true, AllowOut: []string{"10.0.0.0/8"}}}},
		{"internet off", `{"network":{"internet":false}}`,
			CreateRequest{Template: "desktop", Resolution: Resolution{1024, 768}, DPI: 96, TimeoutS: 300, Network: &Network{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaults()
			if err := json.Unmarshal([]byte(tt.body), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded %s over the defaults:\n got %+v, network %+v\nwant %+v, network %+v", tt.body, got, got.Network, tt.want, tt.want.Network)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		body    string
		want    CommandLine
		wantErr string
	}{
		{`"echo hi"`, CommandLine{Script: "echo hi"}, ""},
		{`["ls","-l"]`, CommandLine{Argv: []string{"ls", "-l"}}, ""},
		{`""`, CommandLine{}, "empty string"},
		{`5`, CommandLine{}, "must be a string"},
		{`{"argv":["ls"]}`, CommandLine{}, "must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			var got CommandLine
			err := json.Unmarshal([]byte(tt.body), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
			b, err := json.Marshal(got)
			if err != nil || string(b) != tt.body {
				t.Errorf("marshal again: %s, %v; want %s", b, err, tt.body)
			}
		})
	}
}

// TestEndEvent checks that only the end event carries CommandEnd when
// decoded.
func TestEndEvent(t *testing.T) {
	for _, tt := range []struct {
		line    string
		wantEnd *CommandEnd
	}{
		{`{"type":"start","pid":7}`, nil},
		{`{"type":"end","exit_code":0}`, &CommandEnd{}},
		{`{"type":"end","exit_code":2,"error":"boom"}`, &CommandEnd{ExitCode: 2, Error: "boom"}},
	} {
		var ev CommandEvent
		if err := json.Unmarshal([]byte(tt.line), &ev); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ev.CommandEnd, tt.wantEnd) {
			t.Errorf("%s: end %+v, want %+v", tt.line, ev.CommandEnd, tt.wantEnd)
		}
	}
}

func TestTokenRedacted(t *testing.T) {
	s := Sandbox{ID: "abc", AccessToken: "s3cret"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("made", "sandbox", s, "token", s.AccessToken)
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", s), "%+v": fmt.Sprintf("%+v", s), "%s": fmt.Sprintf("%s", s.AccessToken), "slog": logged.String(),
	} {
		if strings.Contains(out, "s3cret") {
			t.Errorf("%s shows the token: %s", name, out)
		}
	}
}
