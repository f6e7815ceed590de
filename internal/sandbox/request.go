package sandbox

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Bounds of what a sandbox may be created with.
const (
	MinScreen          = 64
	MaxScreen          = 8192
	MinDPI             = 50
	MaxDPI             = 500
	MinTimeout         = time.Second
	MaxTimeout         = 24 * time.Hour
	DefaultTimeout     = 300 * time.Second
	MaxMetadataKeys    = 64
	MaxMetadataKey     = 256
	MaxMetadataValue   = 1024
	MaxEnvVars         = 256
	MaxEnvValue        = 32 << 10
	MaxNetworkPrefixes = 256
	DefaultTemplate    = "desktop"
)

// CreateRequest says what sandbox to create. Start from
// DefaultCreateRequest: Validate refuses zero sizes and timeouts.
type CreateRequest struct {
	Template      string
	Width, Height int
	DPI           int
	// Timeout is how long the sandbox lives once its desktop is ready.
	Timeout  time.Duration
	Metadata map[string]string
	// Env is added to the environment of the agent and of every process
	// it starts.
	Env     map[string]string
	Limits  Limits
	Network NetworkPolicy
	// DisplayMode says who starts the sandbox's X server and desktop.
	DisplayMode DisplayMode
	// PublicPorts makes every port of the sandbox but the agent's
	// (AgentPort) reachable through the proxy without the access token,
	// as E2B's allowPublicTraffic does. The agent always asks for it.
	PublicPorts bool
}

// DisplayMode says who starts a sandbox's X server and desktop session.
type DisplayMode string

// The display modes.
const (
	// DisplayManaged has the agent start Xvfb and XFCE on :0 and keep
	// them running; the sandbox is ready once the desktop is.
	DisplayManaged DisplayMode = ""
	// DisplayExternal leaves the X server and the session to the
	// processes in the sandbox, as E2B's desktop SDK starts them itself
	// through envd. Env may then set DISPLAY.
	DisplayExternal DisplayMode = "external"
)

// DefaultCreateRequest is a 1024x768 desktop at 96 dpi from the "desktop"
// template that lives 5 minutes, with internet access.
func DefaultCreateRequest() CreateRequest {
	return CreateRequest{
		Template: DefaultTemplate,
		Width:    1024,
		Height:   768,
		DPI:      96,
		Timeout:  DefaultTimeout,
		Network:  NetworkPolicy{Internet: true},
	}
}

func invalid(field, format string, args ...any) *desktop.Error {
	return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validate reports the first thing wrong with r as a *desktop.Error of
// code invalid_argument whose Field names the part of the request.
func (r CreateRequest) Validate() error {
	if err := validateTemplate(r.Template); err != nil {
		return err
	}
	if r.Width < MinScreen || r.Width > MaxScreen {
		return invalid("resolution.width", "resolution.width must be from %d to %d, not %d", MinScreen, MaxScreen, r.Width)
	}
	if r.Height < MinScreen || r.Height > MaxScreen {
		return invalid("resolution.height", "resolution.height must be from %d to %d, not %d", MinScreen, MaxScreen, r.Height)
	}
	if r.DPI < MinDPI || r.DPI > MaxDPI {
		return invalid("dpi", "dpi must be from %d to %d, not %d", MinDPI, MaxDPI, r.DPI)
	}
	if err := ValidateTimeout(r.Timeout); err != nil {
		return err
	}
	if err := ValidateMetadata(r.Metadata); err != nil {
		return err
	}
	if r.DisplayMode != DisplayManaged && r.DisplayMode != DisplayExternal {
		return invalid("display_mode", "display_mode must be \"\" (managed) or %q, not %.32q", DisplayExternal, r.DisplayMode)
	}
	if err := validateEnv(r.Env, r.DisplayMode); err != nil {
		return err
	}
	if err := validateLimits(r.Limits); err != nil {
		return err
	}
	return ValidateNetwork(r.Network)
}

func validateTemplate(name string) error {
	if name == "" {
		return invalid("template", "template must not be empty")
	}
	if len(name) > 128 {
		return invalid("template", "template name is longer than 128 characters")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._:-", c)) {
			return invalid("template", "template %q has a character other than letters, digits and . _ : -", name)
		}
	}
	return nil
}

// ValidateTimeout checks a sandbox timeout.
func ValidateTimeout(d time.Duration) error {
	if d < MinTimeout || d > MaxTimeout {
		return invalid("timeout_s", "timeout_s must be from %d to %d seconds, not %g",
			int(MinTimeout/time.Second), int(MaxTimeout/time.Second), d.Seconds())
	}
	return nil
}

// ValidateMetadata checks a sandbox's metadata.
func ValidateMetadata(md map[string]string) error {
	if len(md) > MaxMetadataKeys {
		return invalid("metadata", "metadata has %d keys; at most %d are allowed", len(md), MaxMetadataKeys)
	}
	for k, v := range md {
		switch {
		case k == "":
			return invalid("metadata", "metadata keys must not be empty")
		case utf8.RuneCountInString(k) > MaxMetadataKey:
			return invalid("metadata", "metadata key %.32q... is longer than %d characters", k, MaxMetadataKey)
		case utf8.RuneCountInString(v) > MaxMetadataValue:
			return invalid("metadata", "metadata value of %q is longer than %d characters", k, MaxMetadataValue)
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return invalid("metadata", "metadata of %q is not valid UTF-8", k)
		}
	}
	return nil
}

func validateEnv(env map[string]string, mode DisplayMode) error {
	if len(env) > MaxEnvVars {
		return invalid("env", "env has %d variables; at most %d are allowed", len(env), MaxEnvVars)
	}
	for k, v := range env {
		if !envName(k) {
			return invalid("env", "env name %q must match [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if k == "DISPLAY" && mode == DisplayExternal {
			if !validDisplay(v) {
				return invalid("env", "env DISPLAY=%.32q is not a local display such as :0", v)
			}
			continue
		}
		if k == "DISPLAY" || strings.HasPrefix(k, "CUBICLE_") {
			return invalid("env", "env name %q is reserved: the sandbox sets DISPLAY and CUBICLE_* itself", k)
		}
		if len(v) > MaxEnvValue {
			return invalid("env", "env value of %s is longer than %d bytes", k, MaxEnvValue)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return invalid("env", "env value of %s contains a NUL byte", k)
		}
	}
	return nil
}

// validDisplay reports whether s is a local X display, ":N" or ":N.S".
func validDisplay(s string) bool {
	rest, ok := strings.CutPrefix(s, ":")
	if !ok || rest == "" || len(rest) > 8 {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return rest[0] != '.' && rest[len(rest)-1] != '.' && strings.Count(rest, ".") <= 1
}

func envName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func validateLimits(l Limits) error {
	switch {
	case math.IsNaN(l.CPUs) || l.CPUs < 0 || l.CPUs > 256 || (l.CPUs > 0 && l.CPUs < 0.1):
		return invalid("limits.cpus", "limits.cpus must be 0 (the default) or from 0.1 to 256, not %g", l.CPUs)
	case l.MemoryMB < 0 || l.MemoryMB > 1<<20 || (l.MemoryMB > 0 && l.MemoryMB < 128):
		return invalid("limits.memory_mb", "limits.memory_mb must be 0 (the default) or from 128 to %d, not %d", 1<<20, l.MemoryMB)
	case l.DiskMB < 0 || l.DiskMB > 1<<24 || (l.DiskMB > 0 && l.DiskMB < 64):
		return invalid("limits.disk_mb", "limits.disk_mb must be 0 (the default) or from 64 to %d, not %d", 1<<24, l.DiskMB)
	case l.Pids < 0 || l.Pids > 1<<22 || (l.Pids > 0 && l.Pids < 64):
		return invalid("limits.pids", "limits.pids must be 0 (the default) or from 64 to %d, not %d", 1<<22, l.Pids)
	}
	return nil
}

// ValidateNetwork checks an egress policy.
func ValidateNetwork(p NetworkPolicy) error {
	for _, l := range []struct {
		name string
		list []netip.Prefix
	}{{"network.allow_out", p.AllowOut}, {"network.deny_out", p.DenyOut}} {
		if len(l.list) > MaxNetworkPrefixes {
			return invalid(l.name, "%s has %d entries; at most %d are allowed", l.name, len(l.list), MaxNetworkPrefixes)
		}
		for i, pf := range l.list {
			if !pf.IsValid() {
				return invalid(fmt.Sprintf("%s[%d]", l.name, i), "%s[%d] is not a valid CIDR prefix", l.name, i)
			}
		}
	}
	return nil
}
