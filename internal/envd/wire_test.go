package envd_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestWireFormat sends the request the JS SDK sends (Connect protocol,
// JSON codec, one enveloped message) and checks the bytes that come back.
func TestWireFormat(t *testing.T) {
	sb := startAgent(t)
	body := []byte(`{"process":{"cmd":"/bin/bash","args":["-l","-c","echo hi"]},"stdin":false}`)
	var env bytes.Buffer
	env.WriteByte(0)
	binary.Write(&env, binary.BigEndian, uint32(len(body)))
	env.Write(body)
	req, err := http.NewRequest("POST", sb.base+"/process.Process/Start", &env)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"Connect-Protocol-Version": "1", "Connect-Timeout-Ms": "60000", "Content-Type": "application/connect+json",
		"E2b-Sandbox-Id": "ioi4kqrwr1g000000000", "E2b-Sandbox-Port": "49983", "Keepalive-Ping-Interval": "50",
		"X-Access-Token": testToken, "User-Agent": "e2b-js-sdk/2.51.0",
	} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/connect+json" {
		t.Fatalf("status %d content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var msgs []string
	var flags []byte
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(resp.Body, hdr[:]); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
		if _, err := io.ReadFull(resp.Body, msg); err != nil {
			t.Fatal(err)
		}
		flags = append(flags, hdr[0])
		msgs = append(msgs, string(msg))
	}
	if len(msgs) != 4 {
		t.Fatalf("messages %q, want start, data, end, end of stream", msgs)
	}
	var start struct {
		Event struct {
			Start struct {
				Pid int `json:"pid"`
			} `json:"start"`
		} `json:"event"`
	}
	if err := json.Unmarshal([]byte(msgs[0]), &start); err != nil || start.Event.Start.Pid == 0 {
		t.Errorf("first message %s, want {\"event\":{\"start\":{\"pid\":N}}}", msgs[0])
	}
	if want := `{"event":{"data":{"stdout":"aGkK"}}}`; compact(msgs[1]) != want {
		t.Errorf("data message %s, want %s", msgs[1], want)
	}
	if want := `{"event":{"end":{"exited":true,"status":"exit status 0"}}}`; compact(msgs[2]) != want {
		t.Errorf("end message %s, want %s", msgs[2], want)
	}
	if flags[3] != 2 || strings.TrimSpace(msgs[3]) != "{}" {
		t.Errorf("last envelope flags %d %s, want end of stream {}", flags[3], msgs[3])
	}

	// A unary error is a JSON body with the Connect code.
	req, _ = http.NewRequest("POST", sb.base+"/filesystem.Filesystem/Stat", strings.NewReader(`{"path":"/no/such/file"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Access-Token", testToken)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var e struct{ Code, Message string }
	json.NewDecoder(resp2.Body).Decode(&e)
	if resp2.StatusCode != 404 || e.Code != "not_found" || e.Message != "path '/no/such/file' does not exist" {
		t.Errorf("Stat of a missing file: %d %+v", resp2.StatusCode, e)
	}
}

func compact(s string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		return s
	}
	return b.String()
}
