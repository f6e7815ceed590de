package proc

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openPTY opens a new pseudo-terminal of the given size. The master is
// non-blocking, so reads and writes on it go through the runtime's poller
// and closing it wakes a blocked reader.
func openPTY(size Size) (master, slave *os.File, err error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("proc: open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(mfd)
		return nil, nil, fmt.Errorf("proc: unlock the terminal: %w", err)
	}
	n, err := unix.IoctlGetUint32(mfd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(mfd)
		return nil, nil, fmt.Errorf("proc: terminal number: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	sfd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(mfd)
		return nil, nil, fmt.Errorf("proc: open %s: %w", name, err)
	}
	if err := setSize(mfd, size); err != nil {
		unix.Close(mfd)
		unix.Close(sfd)
		return nil, nil, err
	}
	return os.NewFile(uintptr(mfd), "/dev/ptmx"), os.NewFile(uintptr(sfd), name), nil
}

func setSize(fd int, size Size) error {
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols}); err != nil {
		return fmt.Errorf("proc: set the terminal size: %w", err)
	}
	return nil
}

// dupFile returns a second file for the open file description of f.
func dupFile(f *os.File) (*os.File, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	sc.Control(func(old uintptr) { fd, dupErr = unix.FcntlInt(old, unix.F_DUPFD_CLOEXEC, 0) })
	if dupErr != nil {
		return nil, fmt.Errorf("proc: dup the terminal: %w", dupErr)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// Resize sets the size of the command's terminal.
func (p *Proc) Resize(size Size) error {
	if p.tty == nil {
		return ErrNoTerminal
	}
	sc, err := p.tty.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = setSize(int(fd), size) }); err != nil {
		return fmt.Errorf("proc: resize: %w", err)
	}
	return serr
}
