package display

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// busReadyTimeout bounds the wait for dbus-daemon to print its address.
const busReadyTimeout = 30 * time.Second

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DisplayName returns the X display name, ":N".
func (s *Supervisor) DisplayName() string { return ":" + strconv.Itoa(s.cfg.Display) }

// ID returns the desktop's random ID, the value of TagEnv in the
// environment of every process started for it.
func (s *Supervisor) ID() string { return s.id }

// Env returns the environment for programs launched on this desktop:
// DISPLAY, the session bus, HOME, USER, XDG_RUNTIME_DIR, LANG, PATH, the
// XFCE session variables, Config.Env and the desktop tag. It is complete
// once Start has returned.
func (s *Supervisor) Env() []string {
	s.mu.Lock()
	dir, bus := s.runtimeDir, s.busAddr
	s.mu.Unlock()
	env := []string{
		"DISPLAY=" + s.DisplayName(),
		"HOME=" + s.home,
		"USER=" + s.userName,
		"LOGNAME=" + s.userName,
		"PATH=" + s.path,
		"LANG=" + s.lang,
		"XDG_SESSION_TYPE=x11",
	}
	if dir != "" {
		env = append(env, "XDG_RUNTIME_DIR="+dir)
	}
	if bus != "" {
		env = append(env, "DBUS_SESSION_BUS_ADDRESS="+bus)
	}
	if s.cfg.Session == SessionXFCE {
		// What startxfce4 and the xinitrc it runs would set.
		env = append(env,
			"XDG_CURRENT_DESKTOP=XFCE",
			"XDG_MENU_PREFIX=xfce-",
			"DESKTOP_SESSION=xfce",
			"XDG_CONFIG_DIRS=/etc/xdg",
			"XDG_DATA_DIRS=/usr/local/share:/usr/share",
		)
	}
	env = append(env, s.cfg.Env...)
	env = append(env, TagEnv+"="+s.id)
	return dedupEnv(env)
}

// baseEnv is the environment of the X server.
func (s *Supervisor) baseEnv() []string {
	return []string{"PATH=" + s.path, "LANG=" + s.lang, TagEnv + "=" + s.id}
}

// dedupEnv keeps the last value of each key, at the place of its first.
func dedupEnv(env []string) []string {
	idx := make(map[string]int, len(env))
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// makeRuntimeDir creates the desktop's private XDG_RUNTIME_DIR, owned by the
// desktop user.
func (s *Supervisor) makeRuntimeDir() (string, error) {
	dir, err := os.MkdirTemp("", "cubicle-desktop-"+strconv.Itoa(s.cfg.Display)+"-")
	if err != nil {
		return "", fmt.Errorf("display: runtime dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("display: runtime dir: %w", err)
	}
	if s.asUser {
		if err := os.Chown(dir, int(s.cfg.User.UID), int(s.cfg.User.GID)); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("display: runtime dir: %w", err)
		}
	}
	return dir, nil
}

// launchBus starts the session's private dbus-daemon and waits until it
// prints its address, which it does once it accepts connections.
func (s *Supervisor) launchBus(ctx context.Context) (*proc, error) {
	s.mu.Lock()
	dir := s.runtimeDir
	s.mu.Unlock()
	sock := filepath.Join(dir, "bus")
	os.Remove(sock) // left by a bus that was killed
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("display: start dbus-daemon: %w", err)
	}
	defer pr.Close()
	cmd := command("dbus-daemon", s.sessionEnv(), s.home,
		"--session", "--nofork", "--nopidfile", "--address=unix:path="+sock, "--print-address=3")
	cmd.ExtraFiles = []*os.File{pw}
	p, err := s.startProc(partBus, "", cmd)
	pw.Close()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(busReadyTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	pr.SetReadDeadline(deadline)
	stopRead := context.AfterFunc(ctx, func() { pr.SetReadDeadline(time.Now()) })
	line, err := bufio.NewReader(pr).ReadString('\n')
	stopRead()
	if err != nil || !strings.HasPrefix(line, "unix:") {
		stopProc(context.WithoutCancel(ctx), p, time.Second)
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case p.exited():
			err = fmt.Errorf("exited: %w", p.exitError())
		}
		return nil, fmt.Errorf("display: start dbus-daemon: no address (%q): %w", strings.TrimSpace(line), err)
	}
	return p, nil
}

// launchSession starts xfce4-session. It does not wait for the panel.
func (s *Supervisor) launchSession(ctx context.Context) (*proc, error) {
	// Not startxfce4: its Xsession scripts also start ssh-agent and
	// gpg-agent.
	cmd := command("xfce4-session", s.sessionEnv(), s.home)
	return s.startProc(partSession, "", cmd)
}

// sessionDefaults are xfconf defaults for the session: xfce4-session itself
// would otherwise start an ssh-agent and a gpg-agent, which the desktop does
// not need and which outlive the session.
const sessionDefaults = `<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-session" version="1.0">
  <property name="startup" type="empty">
    <property name="ssh-agent" type="empty">
      <property name="enabled" type="bool" value="false"/>
    </property>
    <property name="gpg-agent" type="empty">
      <property name="enabled" type="bool" value="false"/>
    </property>
  </property>
</channel>
`

// wmDefaults turn xfwm4's compositor off: with it, what an app draws
// reaches the screen only when the compositor repaints, a few milliseconds
// later, and every frame costs CPU twice. Agents want the screen to show
// what was drawn as soon as it was drawn.
const wmDefaults = `<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfwm4" version="1.0">
  <property name="general" type="empty">
    <property name="use_compositing" type="bool" value="false"/>
  </property>
</channel>
`

// writeSessionDefaults puts sessionDefaults and wmDefaults in a
// configuration directory under the runtime directory and returns that
// directory. Xfconf merges it over the system's defaults; the user's own
// settings still win.
func writeSessionDefaults(runtimeDir string) (string, error) {
	dir := filepath.Join(runtimeDir, "xdg")
	xml := filepath.Join(dir, "xfce4", "xfconf", "xfce-perchannel-xml")
	if err := os.MkdirAll(xml, 0o755); err != nil {
		return "", fmt.Errorf("display: session defaults: %w", err)
	}
	for name, body := range map[string]string{"xfce4-session.xml": sessionDefaults, "xfwm4.xml": wmDefaults} {
		if err := os.WriteFile(filepath.Join(xml, name), []byte(body), 0o644); err != nil {
			return "", fmt.Errorf("display: session defaults: %w", err)
		}
	}
	return dir, nil
}

// sessionEnv is Env with the session defaults first in XDG_CONFIG_DIRS: the
// environment of the bus (and so of the xfconfd it starts) and the session.
func (s *Supervisor) sessionEnv() []string {
	env := s.Env()
	s.mu.Lock()
	dir := s.configDir
	s.mu.Unlock()
	if dir == "" {
		return env
	}
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "XDG_CONFIG_DIRS="); ok {
			env[i] = "XDG_CONFIG_DIRS=" + dir + ":" + v
		}
	}
	return env
}
