package local

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// Defaults of Config.
const (
	DefaultStateDir   = "/var/lib/cubicle/sandboxes"
	DefaultCgroupRoot = "cubicle"
	DefaultCgroupFS   = "/sys/fs/cgroup"
	DefaultIDBase     = 100000
	DefaultIDRanges   = 4096
	// DefaultOOMScoreAdj makes the kernel's OOM killer pick sandbox
	// processes before the server's (protecting the server with a negative
	// value needs CAP_SYS_RESOURCE).
	DefaultOOMScoreAdj = 500
)

// IDRangeSize is the number of host uids and gids of every sandbox: ids 0
// to 65535 inside map to HostBase to HostBase+65535 outside.
const IDRangeSize = 65536

// defaultLimits are the limits of a sandbox whose Spec and Config leave
// them zero. Two CPUs, as E2B's sandboxes have by default: an XFCE desktop
// starts in about 1.8 s with two and 3.4 s with one here, since its
// session starts several programs at once.
func defaultLimits() sandbox.Limits {
	return sandbox.Limits{CPUs: 2, MemoryMB: 2048, DiskMB: 2048, Pids: 1024}
}

// Config configures a Backend.
type Config struct {
	// StateDir holds a directory per sandbox: its state, its writable
	// layer's image and its log. Every parent must be searchable by
	// others (mode o+x): the sandbox's init passes through it.
	StateDir string
	// CgroupRoot is the group, under the root of every cgroup hierarchy,
	// that holds a group per sandbox.
	CgroupRoot string
	// CgroupFS is where the cgroup hierarchies are mounted.
	CgroupFS string
	// Defaults fill the zero fields of a Spec's Limits; zero fields here
	// take 1 CPU, 2048 MB of memory, 2048 MB of disk and 1024 pids (the
	// host's pid_max may be as low as 32768: a limit is not optional).
	Defaults sandbox.Limits
	// IDBase is the first host id of the first sandbox's range; sandbox k
	// gets IDBase + k*65536. It must be above every id the host uses.
	IDBase uint32
	// IDRanges is how many ranges there are, so how many sandboxes can
	// exist at once.
	IDRanges int
	// InitBinary is the cubicle binary the sandbox's init runs from
	// (`InitBinary sandbox-init`); the default is this executable.
	InitBinary string
	// AllowPtrace lets processes in a sandbox trace each other (debuggers,
	// strace); the seccomp filter denies it otherwise.
	AllowPtrace bool
	// OOMScoreAdj is the oom_score_adj of every sandbox process; it must be
	// between 0 and 1000.
	OOMScoreAdj int
	// Logger receives the backend's log; nil discards.
	Logger *slog.Logger
	// Network makes the sandboxes' network namespaces. Required.
	Network Network
}

// withDefaults returns c with its zero fields set.
func (c Config) withDefaults() (Config, error) {
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = DefaultCgroupRoot
	}
	if c.CgroupFS == "" {
		c.CgroupFS = DefaultCgroupFS
	}
	if c.IDBase == 0 {
		c.IDBase = DefaultIDBase
	}
	if c.IDRanges == 0 {
		c.IDRanges = DefaultIDRanges
	}
	if c.OOMScoreAdj == 0 {
		c.OOMScoreAdj = DefaultOOMScoreAdj
	}
	if c.InitBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("local: config: find this executable: %w", err)
		}
		c.InitBinary = exe
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Defaults = fillLimits(c.Defaults, defaultLimits())
	return c, nil
}

// Validate reports whether c (with its defaults) can be used.
func (c Config) Validate() error {
	c, err := c.withDefaults()
	if err != nil {
		return err
	}
	var errs []error
	if !filepath.IsAbs(c.StateDir) {
		errs = append(errs, fmt.Errorf("state directory %q is not absolute", c.StateDir))
	}
	if !filepath.IsAbs(c.CgroupFS) {
		errs = append(errs, fmt.Errorf("cgroup filesystem %q is not absolute", c.CgroupFS))
	}
	if filepath.IsAbs(c.CgroupRoot) || filepath.Clean(c.CgroupRoot) != c.CgroupRoot || c.CgroupRoot == "." || strings.HasPrefix(c.CgroupRoot, "..") {
		errs = append(errs, fmt.Errorf("cgroup root %q is not a clean relative path", c.CgroupRoot))
	}
	if c.IDBase < IDRangeSize {
		errs = append(errs, fmt.Errorf("id base %d is below %d, where host users live", c.IDBase, IDRangeSize))
	}
	if c.IDRanges < 1 || uint64(c.IDBase)+uint64(c.IDRanges)*IDRangeSize > 1<<32-1 {
		errs = append(errs, fmt.Errorf("%d id ranges from %d do not fit in 32 bits", c.IDRanges, c.IDBase))
	}
	if c.OOMScoreAdj < 0 || c.OOMScoreAdj > 1000 {
		errs = append(errs, fmt.Errorf("oom_score_adj %d is not between 0 and 1000", c.OOMScoreAdj))
	}
	if err := validLimits(c.Defaults); err != nil {
		errs = append(errs, fmt.Errorf("defaults: %w", err))
	}
	if c.Network == nil {
		errs = append(errs, errors.New("no network"))
	}
	if st, err := os.Stat(c.InitBinary); err != nil || !st.Mode().IsRegular() {
		errs = append(errs, fmt.Errorf("init binary %q is not a regular file", c.InitBinary))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("local: config: %w: %w", desktop.ErrInvalid, err)
	}
	return nil
}

// fillLimits sets the zero fields of l from d.
func fillLimits(l, d sandbox.Limits) sandbox.Limits {
	if l.CPUs == 0 {
		l.CPUs = d.CPUs
	}
	if l.MemoryMB == 0 {
		l.MemoryMB = d.MemoryMB
	}
	if l.DiskMB == 0 {
		l.DiskMB = d.DiskMB
	}
	if l.Pids == 0 {
		l.Pids = d.Pids
	}
	return l
}

// Smallest limits a sandbox can run with.
const (
	minMemoryMB = 32
	minDiskMB   = 16
	minPids     = 8
)

func validLimits(l sandbox.Limits) error {
	var errs []error
	if l.CPUs < 0.01 {
		errs = append(errs, fmt.Errorf("cpus %g is below 0.01", l.CPUs))
	}
	if l.MemoryMB < minMemoryMB {
		errs = append(errs, fmt.Errorf("memory %d MB is below %d MB", l.MemoryMB, minMemoryMB))
	}
	if l.DiskMB < minDiskMB {
		errs = append(errs, fmt.Errorf("disk %d MB is below %d MB", l.DiskMB, minDiskMB))
	}
	if l.Pids < minPids {
		errs = append(errs, fmt.Errorf("pids %d is below %d", l.Pids, minPids))
	}
	return errors.Join(errs...)
}
