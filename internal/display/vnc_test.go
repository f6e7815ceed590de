package display

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

// rfbClient is the least of an RFB 3.8 viewer: no security, raw encoding,
// 32-bit BGRX pixels.
type rfbClient struct {
	c    net.Conn
	w, h int
	fb   []byte // w*h*4, B G R X
}

func dialRFB(t testing.TB, addr string) *rfbClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(deadline))
	r := &rfbClient{c: c}
	if err := r.handshake(); err != nil {
		t.Fatalf("RFB handshake with %s: %v", addr, err)
	}
	return r
}

func (r *rfbClient) read(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(r.c, b)
	return b, err
}

func (r *rfbClient) handshake() error {
	v, err := r.read(12)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(v), "RFB 003.") {
		return fmt.Errorf("banner %q", v)
	}
	if _, err := r.c.Write([]byte("RFB 003.008\n")); err != nil {
		return err
	}
	n, err := r.read(1)
	if err != nil {
		return err
	}
	types, err := r.read(int(n[0]))
	if err != nil {
		return err
	}
	if !strings.ContainsRune(string(types), 1) {
		return fmt.Errorf("security types %v lack None", types)
	}
	if _, err := r.c.Write([]byte{1}); err != nil {
		return err
	}
	res, err := r.read(4)
	if err != nil || binary.BigEndian.Uint32(res) != 0 {
		return fmt.Errorf("security result %v: %v", res, err)
	}
	if _, err := r.c.Write([]byte{1}); err != nil { // ClientInit, shared
		return err
	}
	init, err := r.read(24)
	if err != nil {
		return err
	}
	r.w, r.h = int(binary.BigEndian.Uint16(init[0:])), int(binary.BigEndian.Uint16(init[2:]))
	if _, err := r.read(int(binary.BigEndian.Uint32(init[20:]))); err != nil { // name
		return err
	}
	r.fb = make([]byte, r.w*r.h*4)
	// SetPixelFormat: 32 bpp, depth 24, little endian, true colour,
	// max 255 each, shifts R 16 G 8 B 0.
	pf := []byte{0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0}
	// SetEncodings: raw only.
	enc := []byte{2, 0, 0, 1, 0, 0, 0, 0}
	_, err = r.c.Write(append(pf, enc...))
	return err
}

// request asks for an update of the whole framebuffer.
func (r *rfbClient) request(incremental bool) error {
	m := []byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if incremental {
		m[1] = 1
	}
	binary.BigEndian.PutUint16(m[6:], uint16(r.w))
	binary.BigEndian.PutUint16(m[8:], uint16(r.h))
	_, err := r.c.Write(m)
	return err
}

// update reads server messages until one framebuffer update has been
// applied.
func (r *rfbClient) update() error {
	for {
		t, err := r.read(1)
		if err != nil {
			return err
		}
		switch t[0] {
		case 0: // FramebufferUpdate
			h, err := r.read(3)
			if err != nil {
				return err
			}
			for range binary.BigEndian.Uint16(h[1:]) {
				rh, err := r.read(12)
				if err != nil {
					return err
				}
				x, y := int(binary.BigEndian.Uint16(rh[0:])), int(binary.BigEndian.Uint16(rh[2:]))
				w, hh := int(binary.BigEndian.Uint16(rh[4:])), int(binary.BigEndian.Uint16(rh[6:]))
				if e := int32(binary.BigEndian.Uint32(rh[8:])); e != 0 {
					return fmt.Errorf("encoding %d, asked for raw only", e)
				}
				px, err := r.read(w * hh * 4)
				if err != nil {
					return err
				}
				for row := range hh {
					copy(r.fb[((y+row)*r.w+x)*4:], px[row*w*4:(row+1)*w*4])
				}
			}
			return nil
		case 2: // Bell
		case 3: // ServerCutText
			h, err := r.read(7)
			if err != nil {
				return err
			}
			if _, err := r.read(int(binary.BigEndian.Uint32(h[3:]))); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected server message %d", t[0])
		}
	}
}

// pixel returns the 0xRRGGBB colour at x, y.
func (r *rfbClient) pixel(x, y int) uint32 {
	i := (y*r.w + x) * 4
	return uint32(r.fb[i+2])<<16 | uint32(r.fb[i+1])<<8 | uint32(r.fb[i])
}

// paintRoot fills the root window with colour.
func paintRoot(t testing.TB, xc *xgb.Conn, colour uint32) {
	t.Helper()
	root := xproto.Setup(xc).DefaultScreen(xc).Root
	if err := xproto.ChangeWindowAttributesChecked(xc, root, xproto.CwBackPixel, []uint32{colour}).Check(); err != nil {
		t.Fatal(err)
	}
	if err := xproto.ClearAreaChecked(xc, false, root, 0, 0, 0, 0).Check(); err != nil {
		t.Fatal(err)
	}
}

func TestVNC(t *testing.T) {
	needTools(t, "x11vnc")
	s := startDesktop(t, Config{Session: SessionNone, VNCPort: freePort(t)})
	xc := xconn(t, s.cfg.Display)
	paintRoot(t, xc, 0x3366cc)

	ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
	defer cancel()
	addr, err := s.StartVNC(ctx, VNCOptions{})
	if err != nil {
		t.Fatalf("StartVNC: %v", err)
	}
	if err := rfbBanner(ctx, addr); err != nil {
		t.Fatalf("StartVNC returned %s, whose banner is wrong: %v", addr, err)
	}
	if again, err := s.StartVNC(ctx, VNCOptions{}); err != nil || again != addr {
		t.Errorf("second StartVNC = %q, %v; want %q, nil", again, err, addr)
	}

	// The stream shows the screen, and follows it when it changes.
	r := dialRFB(t, addr)
	if r.w != s.cfg.Width || r.h != s.cfg.Height {
		t.Errorf("framebuffer is %dx%d, want %dx%d", r.w, r.h, s.cfg.Width, s.cfg.Height)
	}
	if err := r.request(false); err != nil {
		t.Fatal(err)
	}
	if err := r.update(); err != nil {
		t.Fatal(err)
	}
	if got := r.pixel(500, 400); got != 0x3366cc {
		t.Errorf("pixel (500,400) = %06x, want 3366cc", got)
	}
	paintRoot(t, xc, 0xcc3366)
	for got := r.pixel(500, 400); got != 0xcc3366; got = r.pixel(500, 400) {
		if err := r.request(true); err != nil {
			t.Fatal(err)
		}
		if err := r.update(); err != nil {
			t.Fatalf("waiting for the repainted screen (pixel %06x): %v", got, err)
		}
	}
	r.c.Close()

	// Killed, it comes back on the same address.
	old := partPID(s, partVNC)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "x11vnc to be restarted", func() bool {
		p := partPID(s, partVNC)
		return p != 0 && p != old && rfbBanner(ctx, addr) == nil
	})
	if st := partStatus(s, partVNC); st.Restarts != 1 || !st.Running {
		t.Errorf("Status() vnc = %+v, want running with 1 restart", st)
	}

	// Other options replace it on the same address.
	before := partPID(s, partVNC)
	if got, err := s.StartVNC(ctx, VNCOptions{ViewOnly: true}); err != nil || got != addr {
		t.Errorf("StartVNC(view only) = %q, %v; want %q, nil", got, err, addr)
	}
	if p := partPID(s, partVNC); p == before {
		t.Errorf("x11vnc (pid %d) was not replaced for new options", p)
	}

	if err := s.StopVNC(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts after StopVNC", addr)
	}
	if st := partStatus(s, partVNC); st.Running {
		t.Errorf("Status() vnc = %+v after StopVNC, want not running", st)
	}
}

func TestVNCWindow(t *testing.T) {
	needTools(t, "x11vnc")
	s := startDesktop(t, Config{Session: SessionNone, VNCPort: freePort(t)})
	xc := xconn(t, s.cfg.Display)
	screen := xproto.Setup(xc).DefaultScreen(xc)
	win, err := xproto.NewWindowId(xc)
	if err != nil {
		t.Fatal(err)
	}
	err = xproto.CreateWindowChecked(xc, screen.RootDepth, win, screen.Root, 100, 100, 320, 200, 0,
		xproto.WindowClassInputOutput, screen.RootVisual, xproto.CwBackPixel, []uint32{0x22aa44}).Check()
	if err != nil {
		t.Fatal(err)
	}
	if err := xproto.MapWindowChecked(xc, win).Check(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
	defer cancel()
	addr, err := s.StartVNC(ctx, VNCOptions{Window: uint32(win)})
	if err != nil {
		t.Fatalf("StartVNC(window %#x): %v", win, err)
	}
	r := dialRFB(t, addr)
	if r.w != 320 || r.h != 200 {
		t.Errorf("framebuffer of window is %dx%d, want 320x200", r.w, r.h)
	}
	if err := r.request(false); err != nil {
		t.Fatal(err)
	}
	if err := r.update(); err != nil {
		t.Fatal(err)
	}
	if got := r.pixel(10, 10); got != 0x22aa44 {
		t.Errorf("pixel (10,10) of window = %06x, want 22aa44", got)
	}
}

func TestVNCPortTaken(t *testing.T) {
	needTools(t, "x11vnc")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := startDesktop(t, Config{Session: SessionNone, VNCPort: l.Addr().(*net.TCPAddr).Port})
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if addr, err := s.StartVNC(ctx, VNCOptions{}); err == nil {
		t.Errorf("StartVNC on a taken port = %q, want an error", addr)
	}
	if st := partStatus(s, partVNC); st.Running {
		t.Errorf("Status() vnc = %+v after a failed start, want not running", st)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func partStatus(s *Supervisor, name string) desktop.PartStatus {
	for _, p := range s.Status() {
		if p.Name == name {
			return p
		}
	}
	return desktop.PartStatus{Name: name}
}

func partPID(s *Supervisor, name string) int { return partStatus(s, name).PID }
