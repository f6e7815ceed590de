package agent

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// BenchmarkCommandTrue runs `true` through the API (start event to end
// event), beside exec.Command("true").Run in the same process.
func BenchmarkCommandTrue(b *testing.B) {
	base := startBare(b, nil)
	b.Run("api", func(b *testing.B) {
		for b.Loop() {
			resp, err := http.Post(base+"/v1/commands", "application/json", strings.NewReader(`{"cmd":["true"]}`))
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Contains(body, []byte(`"exit_code":0`)) {
				b.Fatalf("answer %s", body)
			}
		}
	})
	b.Run("exec", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFileRoundTrip writes and reads back 4 MiB through the API.
func BenchmarkFileRoundTrip(b *testing.B) {
	base := startBare(b, nil)
	data := bytes.Repeat([]byte("0123456789abcdef"), 256<<10)
	u := fileURL(base, "/v1/files", b.TempDir()+"/f")
	b.SetBytes(2 * int64(len(data)))
	for b.Loop() {
		req, _ := http.NewRequest("PUT", u, bytes.NewReader(data))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(resp, err)
		}
		resp.Body.Close()
		resp, err = http.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != int64(len(data)) {
			b.Fatalf("read %d bytes", n)
		}
	}
}
