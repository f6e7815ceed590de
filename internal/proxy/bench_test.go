package proxy

import (
	"io"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkRoundTrip compares a small GET through the proxy with the same
// GET straight to the service.
func BenchmarkRoundTrip(b *testing.B) {
	for _, via := range []string{"direct", "proxy"} {
		b.Run(via, func(b *testing.B) {
			w := newWorld(b, nil)
			w.addBox(idA, tokenA, StateRunning, "127.0.0.1", AgentPort)
			url := w.front.URL + "/sandboxes/" + idA + "/agent/v1/ready"
			if via == "direct" {
				url = "http://127.0.0.1:" + strconv.Itoa(w.boxes[idA].ports[AgentPort]) + "/v1/ready"
			}
			client := w.front.Client()
			b.ResetTimer()
			for b.Loop() {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("X-Access-Token", tokenA)
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}
