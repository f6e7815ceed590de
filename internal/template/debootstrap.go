package template

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// debootstrapArgs is debootstrap's command line for recipe r into root.
// --debian-installer makes it report progress on file descriptor 3.
func debootstrapArgs(r *Recipe, root string) []string {
	args := []string{"--debian-installer", "--variant=" + r.Variant}
	if pkgs := r.debootstrapPackages(); len(pkgs) > 0 {
		args = append(args, "--include="+strings.Join(pkgs, ","))
	}
	return append(args, r.Suite, root, r.Mirror)
}

// runDebootstrap makes the base system of r in root. Its output goes to
// logFile; its progress to progress.
func runDebootstrap(ctx context.Context, prog string, r *Recipe, root string, logFile *os.File, progress func(Progress)) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	defer pr.Close()
	cmd := exec.CommandContext(ctx, prog, debootstrapArgs(r, root)...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}, proxyEnv()...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = 10 * time.Second
	fmt.Fprintf(logFile, "==> %s %s\n", prog, strings.Join(cmd.Args[1:], " "))
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("debootstrap: %w", err)
	}
	pw.Close()

	parser := newDebootstrapParser(progress)
	parsed := make(chan struct{})
	go func() {
		defer close(parsed)
		parser.run(pr)
	}()
	werr := cmd.Wait()
	// Everything debootstrap started is in its process group and gone
	// once it is killed; should a straggler keep the pipe open, stop
	// reading after a grace period.
	select {
	case <-parsed:
	case <-time.After(5 * time.Second):
		pr.Close()
		<-parsed
	}
	if werr == nil {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if perr := parser.err(); perr != nil {
		return fmt.Errorf("debootstrap: %v: %w", werr, perr)
	}
	if tail := logTail(logFile.Name(), 6); tail != "" {
		return fmt.Errorf("debootstrap: %w: %s", werr, tail)
	}
	return fmt.Errorf("debootstrap: %w", werr)
}
