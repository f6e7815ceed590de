package display

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Part names, as Status reports them.
const (
	partXvfb    = "xvfb"
	partBus     = "dbus"
	partSession = "session"
	partVNC     = "vnc"
)

// Restart policy: a part that dies is started again after a backoff that
// doubles from minBackoff to maxBackoff and starts over once the part has
// run healthyAfter.
const (
	minBackoff   = 500 * time.Millisecond
	maxBackoff   = 10 * time.Second
	healthyAfter = 30 * time.Second
	// stopGrace is how long a part gets between SIGTERM and SIGKILL.
	stopGrace = 5 * time.Second
)

// part is one supervised program. Its fields are guarded by Supervisor.mu.
type part struct {
	name   string
	deps   []*part // parts that must run for this one to run
	launch func(context.Context) (*proc, error)

	want bool   // it should run
	key  string // options for the next start; a running proc with another key is replaced
	cur  *proc  // the running process, nil when none

	restarts   int       // starts that were not asked for by a caller
	restarting bool      // the next start is a restart
	lastErr    error     // why it last ended unexpectedly or failed to start
	next       time.Time // earliest next start
	backoff    time.Duration

	attempts   uint64 // finished start attempts
	attemptKey string // key of the last attempt
	attemptErr error  // result of the last attempt
}

// Supervisor runs one desktop's display stack. Create it with New, then
// Start it; Close stops everything it started.
type Supervisor struct {
	cfg      Config
	log      *slog.Logger
	id       string
	asUser   bool // start programs with cfg.User's credentials
	home     string
	userName string
	path     string
	lang     string

	lifeMu sync.Mutex // serialises Start and Close

	mu                      sync.Mutex
	parts                   []*part // in start order
	xvfb, bus, session, vnc *part
	vncOpts                 VNCOptions
	runtimeDir, busAddr     string
	configDir               string // session defaults, see sessionEnv
	started, running        bool
	xgen                    uint64
	xchanged                chan struct{} // closed when xgen changes
	changed                 chan struct{} // closed when any part changes
	outputs                 []*os.File    // read ends of the processes' output

	exits    chan *proc    // finished processes, to the loop
	wake     chan struct{} // asks the loop to look at the parts again
	quit     chan struct{} // closed when shutting down
	quitOnce sync.Once
	wg       sync.WaitGroup // process waiters and output readers

	cleanups []func(context.Context) error // undone in reverse by Close
}

// New returns a Supervisor for cfg. It starts nothing.
func New(cfg Config) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var idb [8]byte
	rand.Read(idb[:])
	s := &Supervisor{
		cfg:      cfg,
		log:      cfg.Logger.With("display", ":"+strconv.Itoa(cfg.Display)),
		id:       hex.EncodeToString(idb[:]),
		path:     os.Getenv("PATH"),
		lang:     os.Getenv("LANG"),
		xchanged: make(chan struct{}),
		changed:  make(chan struct{}),
		exits:    make(chan *proc),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
	}
	if s.path == "" {
		s.path = defaultPath
	}
	if s.lang == "" {
		s.lang = "C.UTF-8"
	}
	if u := cfg.User; u != nil {
		if os.Geteuid() == 0 {
			s.asUser = true
		} else if u.UID != uint32(os.Getuid()) {
			return nil, fmt.Errorf("display: run as uid %d: this process is uid %d, not root: %w",
				u.UID, os.Getuid(), desktop.ErrInvalid)
		}
		s.home, s.userName = u.Home, u.Name
	} else {
		s.home, s.userName = os.Getenv("HOME"), os.Getenv("USER")
		if cur, err := user.Current(); err == nil {
			if s.home == "" {
				s.home = cur.HomeDir
			}
			if s.userName == "" {
				s.userName = cur.Username
			}
		}
		if s.home == "" {
			s.home = "/"
		}
	}

	s.xvfb = &part{name: partXvfb, want: true, launch: func(ctx context.Context) (*proc, error) {
		p, err := s.launchXvfb(ctx)
		if err == nil {
			s.mu.Lock()
			s.xgen++
			close(s.xchanged)
			s.xchanged = make(chan struct{})
			s.mu.Unlock()
		}
		return p, err
	}}
	s.parts = []*part{s.xvfb}
	if cfg.Session == SessionXFCE {
		s.bus = &part{name: partBus, want: true, launch: s.launchBus}
		s.session = &part{name: partSession, want: true, deps: []*part{s.xvfb, s.bus}, launch: s.launchSession}
		s.parts = append(s.parts, s.bus, s.session)
	}
	s.vnc = &part{name: partVNC, deps: []*part{s.xvfb}, launch: s.launchVNC}
	s.parts = append(s.parts, s.vnc)
	return s, nil
}

// Start starts the X server, waits until it answers, then starts the session
// bus and the session (for SessionXFCE) and the supervision that restarts
// them. It does not wait for the session to show its panel. When Start
// fails, whatever it started is stopped again.
func (s *Supervisor) Start(ctx context.Context) (err error) {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return fmt.Errorf("display: start: already started: %w", desktop.ErrConflict)
	}
	s.started = true
	s.mu.Unlock()
	defer func() {
		if err != nil {
			s.closeQuit()
			if cerr := s.runCleanups(context.WithoutCancel(ctx)); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()

	dir, err := s.makeRuntimeDir()
	if err != nil {
		return err
	}
	s.push(func(context.Context) error { return os.RemoveAll(dir) })
	s.mu.Lock()
	s.runtimeDir = dir
	s.mu.Unlock()
	if s.bus != nil {
		cdir, err := writeSessionDefaults(dir)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.busAddr = "unix:path=" + dir + "/bus"
		s.configDir = cdir
		s.mu.Unlock()
	}

	s.push(func(context.Context) error {
		s.closeQuit()
		s.mu.Lock()
		outs := s.outputs
		s.outputs = nil
		s.mu.Unlock()
		for _, f := range outs {
			f.Close()
		}
		s.wg.Wait()
		return nil
	})
	s.push(s.stopAll)

	for _, p := range s.parts {
		if !p.want {
			continue
		}
		if err := s.startPart(ctx, p); err != nil {
			return err
		}
	}

	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.loop(loopCtx)
	}()
	s.push(func(context.Context) error {
		cancel()
		<-loopDone
		return nil
	})
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	s.log.Info("display: started", "desktop_id", s.id, "session", s.cfg.Session)
	return nil
}

// Close stops every part in reverse order (SIGTERM to its process group,
// SIGKILL when ctx ends or after a grace period), kills any process still
// tagged with the desktop's ID, and removes the display's lock, socket and
// runtime directory. It is safe to call more than once.
func (s *Supervisor) Close(ctx context.Context) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.mu.Lock()
	s.running = false
	s.started = true // no Start after Close
	s.mu.Unlock()
	s.closeQuit()
	return s.runCleanups(ctx)
}

func (s *Supervisor) closeQuit() { s.quitOnce.Do(func() { close(s.quit) }) }

// push adds an undo step; runCleanups runs them last first.
func (s *Supervisor) push(f func(context.Context) error) { s.cleanups = append(s.cleanups, f) }

func (s *Supervisor) runCleanups(ctx context.Context) error {
	var errs []error
	for len(s.cleanups) > 0 {
		f := s.cleanups[len(s.cleanups)-1]
		s.cleanups = s.cleanups[:len(s.cleanups)-1]
		if err := f(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopAll stops the parts last first and then whatever else carries the
// desktop's tag.
func (s *Supervisor) stopAll(ctx context.Context) error {
	for i := len(s.parts) - 1; i >= 0; i-- {
		s.stopPart(ctx, s.parts[i])
	}
	err := killTagged(ctx, s.id)
	removeStaleLock(s.cfg.Display)
	return err
}

// Status reports each part: whether it runs, its pid, how often it was
// restarted and why it last ended or failed to start.
func (s *Supervisor) Status() []desktop.PartStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []desktop.PartStatus
	for _, p := range s.parts {
		if p == s.vnc && !p.want && p.cur == nil && p.attempts == 0 {
			continue
		}
		st := desktop.PartStatus{Name: p.name, Restarts: p.restarts}
		if p.cur != nil && !p.cur.exited() {
			st.Running, st.PID = true, p.cur.pid
		}
		if p.lastErr != nil {
			st.Error = p.lastErr.Error()
		}
		out = append(out, st)
	}
	return out
}

// XGeneration counts the X servers started so far: it changes when Xvfb was
// restarted, and connections to the display must be dialled again.
func (s *Supervisor) XGeneration() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.xgen
}

// XChanged returns a channel that is closed when the next X server answers.
// Call it again for the change after that.
func (s *Supervisor) XChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.xchanged
}

// SysProcAttr returns the process attributes for programs launched on this
// desktop: their own process group and the desktop user's credentials.
func (s *Supervisor) SysProcAttr() *syscall.SysProcAttr { return s.sysProcAttr(false) }

// notifyLocked wakes whoever waits for a change of the parts.
func (s *Supervisor) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// kick asks the loop to look at the parts again.
func (s *Supervisor) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
