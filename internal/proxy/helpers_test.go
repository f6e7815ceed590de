package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cubicle-dev/cubicle/desktop"
)

const (
	testDomain = "sandbox.test"
	idA        = "a1b2c3d4e5f6g7h8i9j0"
	idB        = "k1l2m3n4o5p6q7r8s9t0"
	idPaused   = "p0p0p0p0p0p0p0p0p0p0"
	idDead     = "d0d0d0d0d0d0d0d0d0d0"
	idHang     = "h0h0h0h0h0h0h0h0h0h0"
	idUnknown  = "zzzzzzzzzzzzzzzzzzzz"
	tokenA     = "tok_a_0123456789abcdef0123456789"
	tokenB     = "tok_b_0123456789abcdef0123456789"
	tokenOther = "tok_x_0123456789abcdef0123456789"
	portVNC    = 6080
)

// world is a proxy served on 127.0.0.1 in front of fake sandboxes: real HTTP
// servers on loopback addresses, one per sandbox port.
type world struct {
	t     testing.TB
	proxy *Proxy
	front *httptest.Server

	mu    sync.Mutex
	boxes map[string]*box
}

type box struct {
	target Target
	ports  map[int]int // port asked for -> port listening on target.Addr
	rec    *recorder
}

// newWorld starts a proxy; mod may change its config first.
func newWorld(t testing.TB, mod func(*Config)) *world {
	t.Helper()
	w := &world{t: t, boxes: make(map[string]*box)}
	cfg := Config{
		Domain:  testDomain,
		Resolve: w.resolve,
		PortMap: w.portMap,
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	w.proxy = p
	w.front = httptest.NewServer(p)
	t.Cleanup(func() {
		p.Close()
		w.front.Close()
	})
	return w
}

func (w *world) resolve(ctx context.Context, id string) (Target, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.boxes[id]
	if !ok {
		return Target{}, fmt.Errorf("sandbox %s: %w", id, desktop.ErrNotFound)
	}
	return b.target, nil
}

func (w *world) portMap(id string, port int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p, ok := w.boxes[id].ports[port]; ok {
		return p
	}
	return closedPort(w.t)
}

func (w *world) setPublicPorts(id string, public bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.boxes[id].target.PublicPorts = public
}

func (w *world) setState(id, state string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.boxes[id].target.State = state
}

// addBox adds a sandbox at addr whose ports serve the fake services (see
// serviceMux); ports without a server refuse connections.
func (w *world) addBox(id, token, state, addr string, ports ...int) *recorder {
	w.t.Helper()
	b := &box{
		target: Target{Addr: netip.MustParseAddr(addr), Token: token, State: state},
		ports:  make(map[int]int),
		rec:    newRecorder(),
	}
	for _, port := range ports {
		srv := startOn(w.t, addr, serviceMux(id, b.rec))
		b.ports[port] = srv.Listener.Addr().(*net.TCPAddr).Port
	}
	// Cut the proxy's connections before the services shut down, so that
	// their handlers see the end of open streams.
	w.t.Cleanup(func() { w.proxy.CloseSandbox(id) })
	w.mu.Lock()
	w.boxes[id] = b
	w.mu.Unlock()
	return b.rec
}

// startOn starts an HTTP server on addr (any loopback address), port 0.
func startOn(t testing.TB, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// closedPort returns a port on 127.0.0.1 where nothing listens.
func closedPort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Errorf("listen: %v", err)
		return 1
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// hangingPort returns a port on 127.0.0.3 whose accept queue is full, so
// that a connect to it hangs as one to a frozen or vanished sandbox does.
func hangingPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 3}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	addr := net.JoinHostPort("127.0.0.3", strconv.Itoa(port))
	for i := 0; i < 16; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return port // the queue is full: connects now hang
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("accept queue of %s never filled", addr)
	return 0
}

// seen is what a fake service saw of one request.
type seen struct {
	Box       string `json:"box"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	RawPath   string `json:"raw_path"`
	RawQuery  string `json:"raw_query"`
	Host      string `json:"host"`
	Token     string `json:"token"`
	Cookie    string `json:"cookie"`
	Auth      string `json:"auth"`    // Authorization
	Traffic   string `json:"traffic"` // E2b-Traffic-Access-Token
	XFF       string `json:"xff"`
	XFHost    string `json:"xf_host"`
	XFProto   string `json:"xf_proto"`
	BodyLen   int64  `json:"body_len"`
	BodySHA   string `json:"body_sha"`
	Websocket bool   `json:"websocket"`
}

// recorder keeps what a sandbox's services saw and signals stream events.
type recorder struct {
	mu   sync.Mutex
	last []seen

	release  chan struct{} // /stream writes its second line once closed
	started  chan struct{} // /block and /follow signal that they run
	finished chan error    // /block and /follow, /ws: how the request ended
}

func newRecorder() *recorder {
	return &recorder{
		release:  make(chan struct{}),
		started:  make(chan struct{}, 16),
		finished: make(chan error, 16),
	}
}

func (r *recorder) add(s seen) {
	r.mu.Lock()
	r.last = append(r.last, s)
	r.mu.Unlock()
}

func (r *recorder) requests() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.last...)
}

func see(id string, r *http.Request) seen {
	return seen{
		Box: id, Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery,
		Host: r.Host, Token: r.Header.Get("X-Access-Token"), Cookie: r.Header.Get("Cookie"),
		Auth: r.Header.Get("Authorization"), Traffic: r.Header.Get(HeaderTrafficToken),
		XFF: r.Header.Get("X-Forwarded-For"), XFHost: r.Header.Get("X-Forwarded-Host"),
		XFProto: r.Header.Get("X-Forwarded-Proto"),
	}
}

// serviceMux is a sandbox service: /stream, /block, /follow and /ws do what
// their names say; any other path answers with what the service saw.
func serviceMux(id string, rec *recorder) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		rec.add(see(id, r))
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"type":"start"}`+"\n")
		http.NewResponseController(w).Flush()
		select {
		case <-rec.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, `{"type":"end"}`+"\n")
	})
	block := func(w http.ResponseWriter, r *http.Request) {
		rec.add(see(id, r))
		io.WriteString(w, `{"type":"start"}`+"\n")
		http.NewResponseController(w).Flush()
		rec.started <- struct{}{}
		<-r.Context().Done()
		rec.finished <- r.Context().Err()
	}
	// /duplex answers at once and then echoes the request body line by
	// line, as a stream that is fed while it answers (Connect's
	// client-streaming RPCs over HTTP/1.1).
	mux.HandleFunc("/duplex", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			fmt.Fprintln(w, "echo "+sc.Text())
			rc.Flush()
		}
	})
	mux.HandleFunc("/block", block)
	mux.HandleFunc("/follow", block)
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		s := see(id, r)
		s.Websocket = true
		rec.add(s)
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			rec.finished <- err
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx := context.Background()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				rec.finished <- err
				return
			}
			if err := c.Write(ctx, typ, append([]byte(id+":"), data...)); err != nil {
				rec.finished <- err
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s := see(id, r)
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.BodyLen, s.BodySHA = n, hex.EncodeToString(h.Sum(nil))
		rec.add(s)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	})
	return mux
}

// errorBody is the JSON error the proxy answers with.
type errorBody struct {
	Error desktop.Error `json:"error"`
}

// do sends req through the proxy and decodes the answer: a seen on 200, an
// errorBody otherwise.
func (w *world) do(req *http.Request) (int, seen, errorBody) {
	w.t.Helper()
	res, err := w.front.Client().Do(req)
	if err != nil {
		w.t.Fatalf("%s %s (Host %s): %v", req.Method, req.URL, req.Host, err)
	}
	defer res.Body.Close()
	var s seen
	var e errorBody
	dec := json.NewDecoder(res.Body)
	if res.StatusCode == http.StatusOK {
		err = dec.Decode(&s)
	} else {
		err = dec.Decode(&e)
	}
	if err != nil {
		w.t.Fatalf("%s %s: status %d: decode body: %v", req.Method, req.URL, res.StatusCode, err)
	}
	return res.StatusCode, s, e
}

// newRequest builds a request to the proxy for path with host as its Host
// header (empty: the proxy's own address).
func (w *world) newRequest(method, host, path string, body io.Reader) *http.Request {
	w.t.Helper()
	req, err := http.NewRequest(method, w.front.URL+path, body)
	if err != nil {
		w.t.Fatalf("new request: %v", err)
	}
	if host != "" {
		req.Host = host
	}
	return req
}

// hostDialer is an http.Client that sends every request to addr whatever
// the URL's host, as wildcard DNS pointing at the server would.
func hostDialer(addr string, base *http.Transport) *http.Client {
	tr := base.Clone()
	tr.Proxy = nil
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr}
}

// waitFor waits for a value on ch, failing the test after a generous
// deadline (a hang guard, not a measure of speed).
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}
