package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Templates resolves a template name to what a sandbox of it starts from.
type Templates interface {
	Resolve(name string) (Template, error)
}

// Template is what a sandbox of a built template starts from.
type Template struct {
	// RootFS is the template's root filesystem, used read-only.
	RootFS string
	// Env is the environment the template gives its sandboxes; a
	// sandbox's own create-time env wins over it.
	Env map[string]string
}

// Config configures a Manager.
type Config struct {
	// Agent is the host path of the cubicle binary that runs as pid 1 of
	// every sandbox.
	Agent string
	// Logger receives the manager's logs; nil discards them.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for a new sandbox's desktop
	// (default 3 minutes).
	ReadyTimeout time.Duration
	// KeepKilled is how long killed sandboxes and old events stay in the
	// store (default 24 hours).
	KeepKilled time.Duration
	// DialContext reaches the agents inside sandboxes; nil uses a
	// net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Unrouted, if set, is called (outside the manager's locks) when a
	// sandbox stops being reachable: killed, paused, timed out or lost.
	// The proxy cuts its open connections to it there.
	Unrouted func(id string)
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Agent == "" {
		return errors.New("sandbox: config: the path of the agent binary is empty")
	}
	if c.ReadyTimeout < 0 || c.KeepKilled < 0 {
		return errors.New("sandbox: config: durations must not be negative")
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 3 * time.Minute
	}
	if c.KeepKilled == 0 {
		c.KeepKilled = 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// maxExpiring bounds how many timed-out sandboxes are destroyed at once.
const maxExpiring = 4

// retryKill is how long a sandbox whose destruction failed waits for the
// next attempt.
const retryKill = time.Minute

// Manager is the lifecycle of sandboxes: it creates them through the
// Backend, remembers them in the Store, kills them when their timeout ends
// and adopts them again after a restart. Stopping the manager leaves every
// sandbox running.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	backend   Backend
	store     Store
	templates Templates
	agents    *http.Client
	sched     scheduler
	expiring  chan struct{}

	mu      sync.RWMutex
	live    map[string]*entry // sandboxes not killed
	routes  map[string]Route  // running sandboxes, for the proxy
	started bool
	closing bool
	cancels map[uint64]context.CancelFunc
	nextOp  uint64
	ops     sync.WaitGroup
	stop    context.CancelFunc
	done    chan struct{}
}

// entry is a sandbox that is not killed. Operations on it hold its lock,
// one at a time.
type entry struct {
	lock chan struct{}
	rec  Record // guarded by lock
	gone bool   // guarded by lock: killed, or its creation failed
}

func newEntry(rec Record) *entry {
	return &entry{lock: make(chan struct{}, 1), rec: rec}
}

func (e *entry) acquire(ctx context.Context) error {
	select {
	case e.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *entry) release() { <-e.lock }

// NewManager returns a manager of the sandboxes of backend, remembered in
// store. Call Start before anything else.
func NewManager(cfg Config, backend Backend, store Store, templates Templates) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if backend == nil || store == nil || templates == nil {
		return nil, errors.New("sandbox: new manager: backend, store and templates are required")
	}
	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	return &Manager{
		cfg:       cfg,
		log:       cfg.Logger,
		backend:   backend,
		store:     store,
		templates: templates,
		// Never through an HTTP proxy from the environment, and no idle
		// connections to sandboxes that may go away.
		agents: &http.Client{Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       dial,
			DisableKeepAlives: true,
		}},
		sched:    newScheduler(),
		expiring: make(chan struct{}, maxExpiring),
		live:     make(map[string]*entry),
		routes:   make(map[string]Route),
		cancels:  make(map[uint64]context.CancelFunc),
	}, nil
}

// Start reconciles the store with the backend (adopting the sandboxes that
// still run and keeping their timeouts, marking the others killed and
// reclaiming their leftovers) and then starts the timeouts.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started || m.closing {
		m.mu.Unlock()
		return errors.New("sandbox: start: the manager was already started")
	}
	m.started = true
	m.mu.Unlock()
	if err := m.reconcile(ctx); err != nil {
		return err
	}
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	m.mu.Lock()
	m.stop, m.done = stop, make(chan struct{})
	m.mu.Unlock()
	go func() {
		defer close(m.done)
		m.run(loopCtx)
	}()
	return nil
}

// Close stops the timeouts, cancels operations in flight (a creation that
// is cut short destroys what it made) and waits for them. Sandboxes keep
// running: the next Start adopts them.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return nil
	}
	m.closing = true
	for _, cancel := range m.cancels {
		cancel()
	}
	stop, done := m.stop, m.done
	m.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	m.ops.Wait()
	m.agents.CloseIdleConnections()
	return nil
}

// begin registers an operation so that Close can cancel it and wait for
// it. The returned function ends it.
func (m *Manager) begin(ctx context.Context) (context.Context, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return nil, nil, desktop.Errorf(desktop.CodeUnavailable, "the server is shutting down")
	}
	if !m.started {
		return nil, nil, errors.New("sandbox: the manager is not started")
	}
	ctx, cancel := context.WithCancel(ctx)
	id := m.nextOp
	m.nextOp++
	m.cancels[id] = cancel
	m.ops.Add(1)
	return ctx, func() {
		m.mu.Lock()
		delete(m.cancels, id)
		m.mu.Unlock()
		cancel()
		m.ops.Done()
	}, nil
}

// lookup finds a sandbox that is not killed and locks it.
func (m *Manager) lookup(ctx context.Context, id string) (*entry, error) {
	m.mu.RLock()
	e := m.live[id]
	m.mu.RUnlock()
	if e == nil {
		return nil, notFound(id)
	}
	if err := e.acquire(ctx); err != nil {
		return nil, fmt.Errorf("sandbox %s: wait for the operation in progress: %w", id, err)
	}
	if e.gone {
		e.release()
		return nil, notFound(id)
	}
	return e, nil
}

// open finds owner's sandbox id that is not killed and locks it. Another
// owner's sandbox is not found, exactly like a missing one.
func (m *Manager) open(ctx context.Context, owner, id string) (*entry, error) {
	if owner == "" {
		return nil, errors.New("sandbox: no owner given")
	}
	e, err := m.lookup(ctx, id)
	if errors.Is(err, desktop.ErrNotFound) {
		return nil, m.missing(ctx, owner, id)
	}
	if err != nil {
		return nil, err
	}
	if e.rec.Owner != owner {
		e.release()
		return nil, notFound(id)
	}
	return e, nil
}

// missing explains why owner's sandbox id is not there.
func (m *Manager) missing(ctx context.Context, owner, id string) error {
	if !ValidID(id) {
		return notFound(id)
	}
	rec, err := m.store.GetSandbox(ctx, id)
	if err == nil && rec.Owner == owner && rec.State == StateKilled {
		return desktop.Errorf(desktop.CodeNotFound, "sandbox %s was killed at %s", id, rec.Ended.UTC().Format(time.RFC3339))
	}
	return notFound(id)
}

func notFound(id string) error {
	if len(id) > 64 {
		id = id[:64] + "..."
	}
	return desktop.Errorf(desktop.CodeNotFound, "sandbox %q not found", id)
}

// Route is how the proxy reaches a running sandbox.
type Route struct {
	// Agent is the address of the sandbox's agent (port AgentPort).
	Agent netip.AddrPort
	// Token is the access token the agent requires.
	Token string
	// PublicPorts: the ports other than AgentPort need no token (see
	// CreateRequest.PublicPorts).
	PublicPorts bool
}

// Route tells the proxy how to reach a running sandbox; ok is false for
// sandboxes that are not running.
func (m *Manager) Route(id string) (r Route, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok = m.routes[id]
	return r, ok
}

// FindRoute returns the id of the one running sandbox whose route match
// accepts. ok is false when no sandbox or more than one does. match runs
// under the manager's read lock: it must be quick and must not call back.
func (m *Manager) FindRoute(match func(id string, r Route) bool) (id string, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for rid, rt := range m.routes {
		if match(rid, rt) {
			id, n = rid, n+1
		}
	}
	if n != 1 {
		return "", false
	}
	return id, true
}

// setRoute makes rec reachable through the proxy when it runs, and not
// otherwise.
func (m *Manager) setRoute(rec Record) {
	m.mu.Lock()
	_, had := m.routes[rec.ID]
	if rec.State == StateRunning && rec.Instance != nil {
		m.routes[rec.ID] = Route{Agent: netip.AddrPortFrom(rec.Instance.Addr, AgentPort), Token: rec.Token,
			PublicPorts: rec.Params.PublicPorts}
		had = false
	} else {
		delete(m.routes, rec.ID)
	}
	m.mu.Unlock()
	if had {
		m.unrouted(rec.ID)
	}
}

// forget drops a sandbox from everything the manager keeps in memory.
func (m *Manager) forget(id string) {
	m.sched.remove(id)
	m.mu.Lock()
	_, had := m.routes[id]
	delete(m.live, id)
	delete(m.routes, id)
	m.mu.Unlock()
	if had {
		m.unrouted(id)
	}
}

func (m *Manager) unrouted(id string) {
	if m.cfg.Unrouted != nil {
		m.cfg.Unrouted(id)
	}
}

// event records what happened; the log is for debugging, so a failure to
// write it is logged and not returned.
func (m *Manager) event(ctx context.Context, rec Record, kind, detail string) {
	err := m.store.AddEvent(context.WithoutCancel(ctx), Event{
		Time: time.Now(), SandboxID: rec.ID, Owner: rec.Owner, Kind: kind, Detail: detail,
	})
	if err != nil {
		m.log.Warn("record event", "sandbox_id", rec.ID, "kind", kind, "error", err)
	}
}

// clone returns a copy of r that shares nothing with it.
func (r Record) clone() Record {
	r.Metadata = maps.Clone(r.Metadata)
	if r.Metadata == nil {
		r.Metadata = map[string]string{}
	}
	if r.Instance != nil {
		inst := *r.Instance
		inst.State = append([]byte(nil), inst.State...)
		r.Instance = &inst
	}
	r.Params.Network.AllowOut = append([]netip.Prefix(nil), r.Params.Network.AllowOut...)
	r.Params.Network.DenyOut = append([]netip.Prefix(nil), r.Params.Network.DenyOut...)
	return r
}
