package template

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Build returns the template rec makes. When the store has a complete
// build of the same hash it is returned at once; when another goroutine or
// process is building it, Build waits for that build. Otherwise Build
// runs debootstrap, creates the user, runs the steps and moves the result
// into place; a failed or cancelled build leaves nothing behind, neither
// files nor mounts. progress, if not nil, is called from one goroutine at
// a time.
func (s *Store) Build(ctx context.Context, rec *Recipe, progress func(Progress)) (*Template, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	r, err := Expand(rec)
	if err != nil {
		return nil, err
	}
	hash, err := r.Hash()
	if err != nil {
		return nil, err
	}
	if t, ok := s.load(r.Name, hash); ok {
		progress(Progress{Phase: PhaseDone, Done: 1, Total: 1, Message: "cached " + t.Ref()})
		return t, nil
	}
	ref := r.Name + "@" + hash[:12]
	unlock, err := s.lock(ctx, r.Name, hash, func() {
		progress(Progress{Phase: PhaseWait, Message: "another build of " + ref + " is running"})
	})
	if err != nil {
		return nil, err
	}
	defer unlock()
	if t, ok := s.load(r.Name, hash); ok {
		progress(Progress{Phase: PhaseDone, Done: 1, Total: 1, Message: "built by another build: " + t.Ref()})
		return t, nil
	}
	t, err := s.build(ctx, r, hash, progress)
	if err != nil {
		if _, serr := os.Stat(s.failedLogPath(r.Name, hash)); serr == nil {
			return nil, fmt.Errorf("template: build %s (log: %s): %w", ref, s.failedLogPath(r.Name, hash), err)
		}
		return nil, fmt.Errorf("template: build %s: %w", ref, err)
	}
	s.log.Info("template built", "template", t.Ref(), "duration_ms", int64(t.BuildSeconds*1000),
		"size_bytes", t.SizeBytes, "packages", len(t.Packages))
	progress(Progress{Phase: PhaseDone, Done: 1, Total: 1,
		Message: fmt.Sprintf("%s  %d packages  %s  %s", t.Ref(), len(t.Packages), humanBytes(t.SizeBytes), time.Duration(t.BuildSeconds*float64(time.Second)).Round(time.Second))})
	return t, nil
}

// build makes r in a temporary directory and renames it into place. The
// caller holds the build lock.
func (s *Store) build(ctx context.Context, r *Recipe, hash string, progress func(Progress)) (_ *Template, err error) {
	start := time.Now()
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("building needs root: %w", desktop.ErrUnavailable)
	}
	prog := s.debootstrap
	if prog == "" {
		prog = "debootstrap"
	}
	if prog, err = exec.LookPath(prog); err != nil {
		return nil, fmt.Errorf("debootstrap is not installed (apt-get install debootstrap): %w: %w", err, desktop.ErrUnavailable)
	}
	s.removeStale(r.Name, hash)
	os.Remove(s.failedLogPath(r.Name, hash))
	tmp, err := os.MkdirTemp(s.nameDir(r.Name), ".tmp-"+hash+"-")
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(tmp, "build.log")
	defer func() {
		if err != nil {
			// Keep the log of a failed build, for the person fixing
			// the recipe; the rest goes.
			if ctx.Err() == nil {
				os.Rename(logPath, s.failedLogPath(r.Name, hash))
			}
			os.RemoveAll(tmp)
		}
	}()
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	root := filepath.Join(tmp, "rootfs")

	var pkgs []Package
	err = inMountNamespace(func() error {
		err := runDebootstrap(ctx, prog, r, root, logFile, progress)
		if err == nil {
			pkgs, err = customise(ctx, &chroot{root: root, log: logFile}, r, progress)
		}
		// Whatever a killed debootstrap or step left mounted.
		return errors.Join(err, unmountUnder(tmp))
	})
	if err != nil {
		return nil, err
	}

	progress(Progress{Phase: PhaseFinish, Message: "measuring the root filesystem"})
	if err := os.Chown(root, 0, 0); err != nil {
		return nil, err
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, err
	}
	size, files, err := diskUsage(root)
	if err != nil {
		return nil, err
	}
	t := &Template{
		Name:         r.Name,
		Hash:         hash,
		Recipe:       r,
		Created:      time.Now().UTC().Truncate(time.Millisecond),
		BuildSeconds: time.Since(start).Round(time.Millisecond).Seconds(),
		SizeBytes:    size,
		Files:        files,
		Packages:     pkgs,
	}
	progress(Progress{Phase: PhaseFinish, Message: "moving into place"})
	if err := writeMeta(filepath.Join(tmp, "meta.json"), t); err != nil {
		return nil, err
	}
	if err := logFile.Sync(); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	final := s.buildDir(r.Name, hash)
	if _, err := os.Lstat(final); err == nil {
		// An incomplete build from an older version of the store.
		if err := s.discard(r.Name, final); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, err
	}
	syncDir(s.nameDir(r.Name))
	got, ok := s.load(r.Name, hash)
	if !ok {
		return nil, fmt.Errorf("build at %s does not load: %w", final, desktop.ErrInternal)
	}
	return got, nil
}

// customise turns the base system in c.root into the template: the user,
// the steps, the clean-up. It runs in the build's mount namespace.
func customise(ctx context.Context, c *chroot, r *Recipe, progress func(Progress)) (pkgs []Package, err error) {
	unmount, err := apiMounts(c.root)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, unmount()) }()

	total := len(r.Steps)
	if r.User != nil {
		total++
	}
	done := 0
	progress(Progress{Phase: PhaseSteps, Done: done, Total: total, Message: "preparing the chroot"})
	if err := c.writeFile(ctx, policyRCPath, "0755", policyRCContent); err != nil {
		return nil, fmt.Errorf("prepare chroot: %w", err)
	}
	if u := r.User; u != nil {
		msg := fmt.Sprintf("create user %s (uid %d)", u.Name, u.UID)
		progress(Progress{Phase: PhaseSteps, Done: done, Total: total, Message: msg})
		fmt.Fprintf(c.log, "==> %s\n", msg)
		if err := c.addUser(ctx, u); err != nil {
			return nil, fmt.Errorf("%s: %w", msg, err)
		}
		done++
	}
	for i, st := range r.Steps {
		if err := context.Cause(ctx); err != nil {
			return nil, err
		}
		what := describeStep(st)
		progress(Progress{Phase: PhaseSteps, Done: done, Total: total, Message: what})
		fmt.Fprintf(c.log, "==> step %d/%d: %s\n", i+1, len(r.Steps), what)
		if w := st.Write; w != nil {
			err = c.writeFile(ctx, w.Path, w.Mode, w.Content)
		} else {
			cur := done
			_, err = c.run(ctx, []string{"/bin/sh", "-e", "-c", st.Run}, nil, func(line string) {
				progress(Progress{Phase: PhaseSteps, Done: cur, Total: total, Message: line})
			})
		}
		if err != nil {
			return nil, fmt.Errorf("steps[%d] (%s): %w", i, what, err)
		}
		done++
	}
	progress(Progress{Phase: PhaseSteps, Done: done, Total: total, Message: "steps done"})

	progress(Progress{Phase: PhaseFinish, Message: "cleaning package caches"})
	fmt.Fprintf(c.log, "==> finish\n")
	if err := c.sh(ctx, finishScript, nil); err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	if pkgs, err = c.packages(ctx); err != nil {
		return nil, fmt.Errorf("list packages: %w", err)
	}
	return pkgs, nil
}

// describeStep names a step in a few words.
func describeStep(st Step) string {
	if st.Write != nil {
		return "write " + st.Write.Path
	}
	line, _, more := strings.Cut(strings.TrimSpace(st.Run), "\n")
	if r := []rune(line); len(r) > 72 {
		line, more = string(r[:72]), true
	}
	if more {
		line += " …"
	}
	return "run: " + line
}

// failedLogPath is where the log of the last failed build of name/hash
// is kept, until a build of it succeeds.
func (s *Store) failedLogPath(name, hash string) string {
	return filepath.Join(s.nameDir(name), hash[:12]+".failed.log")
}

// logTail returns the last n non-blank lines of the file at path, joined
// with " | ".
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 16 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		f.Seek(fi.Size()-window, io.SeekStart)
	}
	data, _ := io.ReadAll(io.LimitReader(f, window))
	var lines []string
	for l := range strings.Lines(string(data)) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// removeStale deletes the temporary directories that builds of name left
// when their process died: those of hash, whose lock the caller holds, and
// those of other hashes whose lock is free.
func (s *Store) removeStale(name, hash string) {
	stale, _ := filepath.Glob(filepath.Join(s.nameDir(name), ".tmp-*"))
	for _, p := range stale {
		h, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(p), ".tmp-"), "-")
		if !hashRE.MatchString(h) {
			continue
		}
		unlock := func() {}
		if h != hash {
			var ok bool
			if unlock, ok = s.tryLock(name, h); !ok {
				continue // a live build
			}
		}
		s.log.Info("removing leftover of an interrupted template build", "path", p)
		os.RemoveAll(p)
		unlock()
	}
}

// discard moves dir out of sight and deletes it.
func (s *Store) discard(name, dir string) error {
	trash, err := os.MkdirTemp(s.nameDir(name), ".trash-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(trash)
	return os.Rename(dir, filepath.Join(trash, "x"))
}

func writeMeta(path string, t *Template) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// diskUsage is the disk space the tree at root takes (each hard-linked
// file once, as du counts) and the number of its entries. Symbolic links
// are not followed.
func diskUsage(root string) (size, files int64, err error) {
	seen := map[[2]uint64]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if p != root {
			files++
		}
		if st.Nlink > 1 && !fi.IsDir() {
			key := [2]uint64{st.Dev, st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		size += st.Blocks * 512
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("measure: %w", err)
	}
	return size, files, nil
}

// humanBytes writes n in binary units, as "812 MiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v < 10 {
		return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.0f %ciB", v, "KMGTPE"[exp])
}
