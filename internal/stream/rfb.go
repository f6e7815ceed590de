package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrProtocol is the class of the errors of a viewer that does not speak
// RFB as the filter understands it; the stream is closed.
var ErrProtocol = errors.New("rfb protocol error")

// ProtocolError says what a viewer sent that the filter cannot follow.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string        { return "rfb: " + e.Msg }
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// Client-to-server message types (RFC 6143 and the extensions that noVNC
// and x11vnc speak).
const (
	msgSetPixelFormat          = 0
	msgSetEncodings            = 2
	msgFramebufferUpdateReq    = 3
	msgKeyEvent                = 4
	msgPointerEvent            = 5
	msgClientCutText           = 6
	msgSetScale                = 8 // UltraVNC, per viewer
	msgEnableContinuousUpdates = 150
	msgClientFence             = 248
	msgXVP                     = 250
	msgSetDesktopSize          = 251
	msgQEMU                    = 255
)

// Limits that keep one viewer from making the filter buffer without end.
const (
	maxEncodings = 1024
	maxCutText   = 16 << 20
)

type filterPhase uint8

const (
	phaseVersion    filterPhase = iota // 12 bytes "RFB 003.00x\n"
	phaseSecurity                      // 1 byte: the security type chosen (3.7, 3.8)
	phaseClientInit                    // 1 byte: the shared flag
	phaseMessages
)

// Filter follows what a viewer sends to an RFB server and writes it on to
// W. A view-only filter drops every message that changes the desktop (key
// and pointer events, clipboard text, desktop size changes, power
// operations) and passes the rest (pixel format, encodings, update
// requests, fences, continuous updates) so that the viewer still sees
// everything. It also makes every viewer ask for a shared session, so that
// one viewer never disconnects another.
//
// The viewer's bytes may arrive cut anywhere (WebSocket frames do not
// follow RFB messages); the filter keeps the partial message until the
// rest comes. It accepts only the security type None, which is what the
// sandbox's x11vnc offers, and refuses message types it does not know with
// an error of class ErrProtocol, since it could not tell where the next
// message starts.
type Filter struct {
	w        io.Writer
	viewOnly bool

	phase   filterPhase
	v33     bool   // protocol 3.3: the server picks the security type
	pending []byte // the start of an incomplete message
	body    int    // clipboard bytes still to come
	skip    bool   // drop the clipboard bytes still to come
	out     []byte
	dropped int
}

// NewFilter returns a Filter that writes what it passes to w.
func NewFilter(w io.Writer, viewOnly bool) *Filter {
	return &Filter{w: w, viewOnly: viewOnly}
}

// Dropped is the number of messages dropped so far.
func (f *Filter) Dropped() int { return f.dropped }

// Write parses p and writes what passes to the underlying writer in one
// call. After an error the filter is unusable.
func (f *Filter) Write(p []byte) (int, error) {
	f.out = f.out[:0]
	n := len(p)
	err := f.feed(p)
	if len(f.out) > 0 {
		if _, werr := f.w.Write(f.out); werr != nil && err == nil {
			err = werr
		}
	}
	if len(f.out) > 64<<10 {
		f.out = nil // do not keep a large buffer for the life of the stream
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (f *Filter) feed(p []byte) error {
	for len(p) > 0 {
		if f.body > 0 {
			k := min(f.body, len(p))
			if !f.skip {
				f.out = append(f.out, p[:k]...)
			}
			f.body -= k
			p = p[k:]
			continue
		}
		// Complete the current unit in pending, or use p directly when
		// nothing is pending.
		buf := p
		if len(f.pending) > 0 {
			buf = append(f.pending, p...)
		}
		size, err := f.unitSize(buf)
		if err != nil {
			return err
		}
		if size == 0 || size > len(buf) {
			// Not enough yet: keep what there is.
			f.pending = append(f.pending[:0], buf...)
			return nil
		}
		consumed := size - len(f.pending)
		if err := f.handle(buf[:size]); err != nil {
			return err
		}
		f.pending = f.pending[:0]
		p = p[consumed:]
	}
	return nil
}

// unitSize returns the length of the unit at the start of b (a handshake
// step or a message, for ClientCutText its header only), or 0 when more
// bytes are needed to tell.
func (f *Filter) unitSize(b []byte) (int, error) {
	switch f.phase {
	case phaseVersion:
		return 12, nil
	case phaseSecurity, phaseClientInit:
		return 1, nil
	}
	return messageSize(b)
}

// messageSize is the size of the client message at the start of b (for
// ClientCutText the 8-byte header), or 0 when b is too short to tell.
func messageSize(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	switch t := b[0]; t {
	case msgSetPixelFormat:
		return 20, nil
	case msgSetEncodings:
		if len(b) < 4 {
			return 0, nil
		}
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n > maxEncodings {
			return 0, protoErr("SetEncodings lists %d encodings, more than %d", n, maxEncodings)
		}
		return 4 + 4*n, nil
	case msgFramebufferUpdateReq:
		return 10, nil
	case msgKeyEvent:
		return 8, nil
	case msgPointerEvent:
		return 6, nil
	case msgClientCutText:
		return 8, nil
	case msgSetScale, msgXVP:
		return 4, nil
	case msgEnableContinuousUpdates:
		return 10, nil
	case msgClientFence:
		if len(b) < 9 {
			return 0, nil
		}
		n := int(b[8])
		if n > 64 {
			return 0, protoErr("ClientFence payload of %d bytes, more than 64", n)
		}
		return 9 + n, nil
	case msgSetDesktopSize:
		if len(b) < 8 {
			return 0, nil
		}
		return 8 + 16*int(b[6]), nil
	case msgQEMU:
		if len(b) < 2 {
			return 0, nil
		}
		if b[1] != 0 {
			return 0, protoErr("QEMU client message subtype %d is not supported (only 0, extended key events)", b[1])
		}
		return 12, nil
	default:
		return 0, protoErr("unknown client message type %d", t)
	}
}

// handle acts on one complete unit.
func (f *Filter) handle(u []byte) error {
	switch f.phase {
	case phaseVersion:
		switch string(u) {
		case "RFB 003.003\n":
			f.v33 = true
			f.phase = phaseClientInit
		case "RFB 003.007\n", "RFB 003.008\n":
			f.phase = phaseSecurity
		default:
			return protoErr("unsupported protocol version %q: speak RFB 3.3, 3.7 or 3.8", u)
		}
		f.out = append(f.out, u...)
		return nil
	case phaseSecurity:
		if u[0] != 1 {
			return protoErr("security type %d is not supported: the stream is already authenticated, choose None (1)", u[0])
		}
		f.phase = phaseClientInit
		f.out = append(f.out, u...)
		return nil
	case phaseClientInit:
		f.phase = phaseMessages
		f.out = append(f.out, 1) // shared: never disconnect the other viewers
		return nil
	}
	t := u[0]
	if t == msgClientCutText {
		n := int64(int32(binary.BigEndian.Uint32(u[4:])))
		if n < 0 { // extended clipboard: the length is negated
			n = -n
		}
		if n > maxCutText {
			return protoErr("clipboard text of %d bytes, more than %d", n, maxCutText)
		}
		f.body = int(n)
		f.skip = f.viewOnly
	}
	if f.viewOnly && changesDesktop(t) {
		f.dropped++
		return nil
	}
	f.out = append(f.out, u...)
	return nil
}

// changesDesktop reports whether a message of type t acts on the desktop
// rather than on what the viewer is shown.
func changesDesktop(t byte) bool {
	switch t {
	case msgKeyEvent, msgPointerEvent, msgClientCutText, msgSetDesktopSize, msgXVP, msgQEMU:
		return true
	}
	return false
}
