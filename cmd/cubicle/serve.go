package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/api"
	"github.com/cubicle-dev/cubicle/internal/backend/local"
	"github.com/cubicle-dev/cubicle/internal/netpolicy"
	"github.com/cubicle-dev/cubicle/internal/proxy"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
	"github.com/cubicle-dev/cubicle/internal/server"
	"github.com/cubicle-dev/cubicle/internal/template"
)

const serveUsage = `usage: cubicle serve [flags]

Runs the Cubicle server: the REST API (/v1), the proxy into sandboxes and
the lifecycle of every sandbox. It needs root: sandboxes are built from
Linux namespaces, cgroups and network interfaces. On the first start it
builds the default "desktop" template (a few minutes, with progress) and
prints an API key.

Flags:
`

// serveFlags are the flags of serve and of the commands that share its
// state directory (keys, template).
type serveFlags struct {
	stateDir     string
	templatesDir string
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.stateDir, "state-dir", envOr("CUBICLE_STATE_DIR", "/var/lib/cubicle"), "where the database, templates and sandboxes live")
	fs.StringVar(&f.templatesDir, "templates-dir", os.Getenv("CUBICLE_TEMPLATES_DIR"), "where built templates live (default <state-dir>/templates)")
}

func (f *serveFlags) templates() (*template.Store, error) {
	dir := f.templatesDir
	if dir == "" {
		dir = filepath.Join(f.stateDir, "templates")
	}
	return template.NewStore(template.Config{Dir: dir})
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage); fs.PrintDefaults() }
	var sf serveFlags
	sf.register(fs)
	var (
		listen    = fs.String("listen", envOr("CUBICLE_LISTEN", "127.0.0.1:8080"), "address of the API and the proxy")
		domain    = fs.String("domain", os.Getenv("CUBICLE_DOMAIN"), "route Host <port>-<id>.<domain> into sandboxes (needs wildcard DNS)")
		tlsCert   = fs.String("tls-cert", "", "PEM certificate (a wildcard for *.<domain>); with --tls-key the server speaks HTTPS")
		tlsKey    = fs.String("tls-key", "", "PEM private key of --tls-cert")
		selfSign  = fs.Bool("tls-self-signed", false, "make (once) and use a local CA and a wildcard certificate for --domain")
		publicURL = fs.String("public-url", os.Getenv("CUBICLE_PUBLIC_URL"), "the URL clients reach the server at (default: from each request)")
		tmplName  = fs.String("template", "desktop", "template to build at start when it is missing (empty: none)")
		logLevel  = fs.String("log-level", "info", "debug, info, warn or error")
		logFormat = fs.String("log-format", "text", "text or json")
		uplink    = fs.String("uplink", "", "interface sandbox traffic leaves the host by (default: the interface of the default route)")
		waitLock  = fs.Duration("wait-lock", 0, "wait this long for another cubicle serve on this host to stop, instead of failing at once")
		novncDir  = fs.String("novnc-dir", envOr("CUBICLE_NOVNC_DIR", "/usr/share/novnc"), "noVNC for the live view in the browser (apt-get install novnc)")
		streamTTL = fs.Duration("stream-ttl", time.Hour, "how long a live-view URL works unless its request says")
		e2bPublic = fs.Bool("e2b-public-traffic", true, "as on E2B, the ports other than 49983 (the agent) of a sandbox created through\n"+
			"E2B's API are public: anyone who knows https://<port>-<id>.<domain> reaches them without a token,\n"+
			"unless it was created with network.allowPublicTraffic false. Set false to make every port of\n"+
			"every such sandbox ask for its token (header e2b-traffic-access-token: <trafficAccessToken>).\n"+
			"Sandboxes created through /v1 always ask for the token")
	)
	if code, ok := parseOnlyFlags(fs, args, stderr); !ok {
		return code
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "cubicle serve: %v\n", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "cubicle serve: needs root: sandboxes are made of namespaces, cgroups and network interfaces (run it with sudo)")
		return 1
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "cubicle serve: %v\n", err)
		return 1
	}
	// Sandbox networks, cgroups and firewall rules are host-wide: one
	// server per host. The lock goes with the process, however it ends.
	lock, err := lockHost(ctx, *waitLock, stderr)
	if err != nil {
		return fail(err)
	}
	defer lock.Close()

	templates, err := sf.templates()
	if err != nil {
		return fail(err)
	}
	if *tmplName != "" {
		if err := ensureTemplate(ctx, templates, *tmplName, stderr); err != nil {
			return fail(err)
		}
	}

	if *selfSign {
		if *domain == "" {
			fmt.Fprintln(stderr, "cubicle serve: --tls-self-signed needs --domain")
			return 2
		}
		cert, key, err := proxy.SelfSignedWildcard(*domain, filepath.Join(sf.stateDir, "tls"))
		if err != nil {
			return fail(err)
		}
		*tlsCert, *tlsKey = cert, key
	}

	nets, err := netpolicy.New(netpolicy.Config{Uplink: *uplink, Logger: log.With("component", "network")})
	if err != nil {
		return fail(err)
	}
	// The limits of a sandbox that asks for none; E2B's API reports them.
	defaults := sandbox.Limits{CPUs: 2, MemoryMB: 2048, DiskMB: 2048, Pids: 1024}
	backend, err := local.New(local.Config{
		Defaults: defaults,
		StateDir: filepath.Join(sf.stateDir, "sandboxes"),
		Logger:   log.With("component", "backend"),
		Network:  networkAdapter{nets},
	})
	if err != nil {
		return fail(err)
	}
	defer backend.Close() // after the server: it stops watching the sandboxes
	srv, err := server.New(server.Config{
		Listen:    *listen,
		StateDir:  sf.stateDir,
		Domain:    *domain,
		TLSCert:   *tlsCert,
		TLSKey:    *tlsKey,
		PublicURL: *publicURL,
		NoVNCDir:  *novncDir,
		StreamTTL: *streamTTL,
		Logger:    log,

		SandboxDefaults:      defaults,
		E2BDenyPublicTraffic: !*e2bPublic,
		NewProxy: func(resolve server.ResolveFunc) (http.Handler, error) {
			return proxy.New(proxy.Config{
				Domain: *domain,
				Logger: log.With("component", "proxy"),
				Resolve: func(ctx context.Context, id string) (proxy.Target, error) {
					rt, ok := resolve(id)
					if !ok {
						return proxy.Target{}, desktop.Errorf(desktop.CodeNotFound, "no running sandbox %s", id)
					}
					return proxy.Target{Addr: rt.Agent.Addr(), Token: rt.Token, State: proxy.StateRunning,
						PublicPorts: rt.PublicPorts}, nil
				},
			})
		},
	}, backend, templateAdapter{templates})
	if err != nil {
		return fail(err)
	}
	scheme := "http"
	if *tlsCert != "" {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s", scheme, *listen)
	if *publicURL != "" {
		url = *publicURL
	}
	fmt.Fprintf(stdout, "cubicle: serving on %s (API: %s/v1, OpenAPI: %s/v1/openapi.yaml)\n", url, url, url)
	fmt.Fprintf(stdout, "cubicle: dashboard: %s/ (log in with an API key)\n", url)
	if k := srv.FirstKey(); k != "" {
		fmt.Fprintf(stdout, "cubicle: API key (shown once; make more with `cubicle keys create NAME`):\n\n    %s\n\n", k)
	} else {
		fmt.Fprintln(stdout, "cubicle: API keys exist already; list them with `cubicle keys ls`, add one with `cubicle keys create NAME`")
	}
	fmt.Fprintf(stdout, "cubicle: E2B's SDKs: %s\n", e2bEnv(url, *domain, srv.FirstKey()))
	fmt.Fprintf(stdout, "cubicle: try: CUBICLE_URL=%s CUBICLE_API_KEY=<key> cubicle create\n", url)
	if err := srv.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// e2bEnv is the environment that points E2B's SDKs at this server.
func e2bEnv(url, domain, key string) string {
	k := "e2b_<hex of your key>"
	if key != "" {
		k = api.E2BKey(key)
	}
	env := "E2B_API_KEY=" + k + " E2B_API_URL=" + url + " E2B_SANDBOX_URL=" + url
	if domain != "" {
		env += " E2B_DOMAIN=" + domain
	}
	return env
}

// hostLock is where a running server holds its lock.
const hostLock = "/run/cubicle/serve.lock"

// lockHost takes the host-wide server lock, or says which process has it.
// With wait > 0 it waits that long for the lock.
func lockHost(ctx context.Context, wait time.Duration, stderr io.Writer) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(hostLock), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(hostLock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	end := time.Now().Add(wait)
	for said := false; ; {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		b, _ := os.ReadFile(hostLock)
		holder := strings.TrimSpace(string(b))
		if time.Now().After(end) || ctx.Err() != nil {
			f.Close()
			return nil, fmt.Errorf("another cubicle serve runs on this host (pid %s, lock %s); sandboxes share host-wide networks and cgroups, so stop it first",
				holder, hostLock)
		}
		if !said {
			fmt.Fprintf(stderr, "cubicle: waiting up to %v for another cubicle serve (pid %s) to stop\n", wait, holder)
			said = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}

// ensureTemplate makes sure the named template is built. A built-in
// template is built when no build of its current recipe exists, so that a
// new version of a built-in recipe reaches new sandboxes; the older builds
// stay for the sandboxes that use them. Another template needs some build.
func ensureTemplate(ctx context.Context, store *template.Store, name string, stderr io.Writer) error {
	rec, builtinErr := template.Builtin(name)
	if builtinErr != nil {
		if _, err := store.Get(name); err == nil || !errors.Is(err, desktop.ErrNotFound) {
			return err
		}
		return fmt.Errorf("template %q is not built and is not a built-in recipe: build it with `cubicle template build -f RECIPE`", name)
	}
	hash, err := rec.Hash()
	if err != nil {
		return err
	}
	older := false
	switch _, err := store.Resolve(name + "@" + hash); {
	case err == nil:
		return nil
	case !errors.Is(err, desktop.ErrNotFound):
		return err
	}
	if _, err := store.Get(name); err == nil {
		older = true
	}
	if older {
		fmt.Fprintf(stderr, "cubicle: the built-in %q recipe changed: building it again (a few minutes)\n", name)
	} else {
		fmt.Fprintf(stderr, "cubicle: building the %q template (first start only; a few minutes)\n", name)
	}
	t, err := store.Build(ctx, rec, template.RenderProgress(stderr))
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "cubicle: template %s built: %d MB\n", t.Ref(), t.SizeBytes>>20)
	return nil
}

// templateAdapter gives the sandbox manager the root filesystems and
// environments of built templates.
type templateAdapter struct{ s *template.Store }

func (a templateAdapter) Resolve(name string) (sandbox.Template, error) {
	t, err := a.s.Resolve(name)
	if err != nil {
		return sandbox.Template{}, err
	}
	out := sandbox.Template{RootFS: t.RootFS}
	if t.Recipe != nil {
		out.Env = t.Recipe.Env
	}
	return out, nil
}

// networkAdapter gives the local backend the sandbox networks.
type networkAdapter struct{ m *netpolicy.Manager }

func (a networkAdapter) Setup(ctx context.Context, id string) (local.NetInfo, error) {
	n, err := a.m.Setup(ctx, id)
	if err != nil {
		return local.NetInfo{}, err
	}
	return local.NetInfo{NetNSPath: n.NetNSPath, Addr: n.Addr}, nil
}

func (a networkAdapter) Apply(ctx context.Context, id string, p sandbox.NetworkPolicy) error {
	return a.m.Apply(ctx, id, p)
}

func (a networkAdapter) Teardown(ctx context.Context, id string) error { return a.m.Teardown(ctx, id) }

func (a networkAdapter) Reclaim(ctx context.Context, keep map[string]bool) error {
	return a.m.Reclaim(ctx, keep)
}

var _ local.Network = networkAdapter{}
var _ sandbox.Templates = templateAdapter{}
