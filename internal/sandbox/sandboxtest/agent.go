package sandboxtest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// agent is a tiny stand-in for the cubicle agent of a fake sandbox: a real
// HTTP server that answers /health and /v1/ready (honouring ?wait= and the
// access token), and stops answering while its sandbox is paused.
type agent struct {
	token   string
	readyAt time.Time
	srv     *http.Server
	served  chan struct{} // closed when Serve returned
	stopped chan struct{} // closed by stop
	reqs    sync.WaitGroup

	mu     sync.Mutex
	thawed chan struct{} // closed while running; open while paused
	halted bool          // stop was called
}

func startAgent(ln net.Listener, token string, readyAfter time.Duration) *agent {
	a := &agent{
		token:   token,
		readyAt: time.Now().Add(readyAfter),
		served:  make(chan struct{}),
		stopped: make(chan struct{}),
		thawed:  make(chan struct{}),
	}
	close(a.thawed)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /v1/ready", a.ready)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{
			"code": "not_found", "message": fmt.Sprintf("no route %s %s", r.Method, r.URL.Path), "index": -1}})
	})
	a.srv = &http.Server{Handler: a.frozen(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(a.served)
		a.srv.Serve(ln)
	}()
	return a
}

// frozen holds every request while the sandbox is paused, as a frozen
// process would.
func (a *agent) frozen(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		if a.halted {
			a.mu.Unlock()
			return
		}
		a.reqs.Add(1)
		thawed := a.thawed
		a.mu.Unlock()
		defer a.reqs.Done()
		select {
		case <-thawed:
		case <-a.stopped:
			return
		case <-r.Context().Done():
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a *agent) ready(w http.ResponseWriter, r *http.Request) {
	if a.token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Access-Token")), []byte(a.token)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
			"code": "unauthorized", "message": "missing or wrong access token", "index": -1}})
		return
	}
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 5*time.Minute {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
				"code": "invalid_argument", "message": "bad wait", "field": "wait", "index": -1}})
			return
		}
		if left := time.Until(a.readyAt); left > 0 {
			t := time.NewTimer(min(d, left))
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-a.stopped:
				t.Stop()
				return
			}
		}
	}
	if time.Now().Before(a.readyAt) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": "the fake desktop is starting"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}

func (a *agent) pause() {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.thawed:
		a.thawed = make(chan struct{})
	default: // already paused
	}
}

func (a *agent) resume() {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.thawed:
	default:
		close(a.thawed)
	}
}

// stop closes the listener and every connection and waits until no
// request runs.
func (a *agent) stop() {
	a.mu.Lock()
	a.halted = true
	close(a.stopped)
	a.mu.Unlock()
	a.srv.Close()
	<-a.served
	a.reqs.Wait()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
