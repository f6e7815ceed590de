package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Client messages as noVNC builds them.
var (
	hello        = cat([]byte("RFB 003.008\n"), []byte{1}, []byte{0}) // version, None, not shared
	helloShared  = cat([]byte("RFB 003.008\n"), []byte{1}, []byte{1})
	hello33      = cat([]byte("RFB 003.003\n"), []byte{0})
	hello33Out   = cat([]byte("RFB 003.003\n"), []byte{1})
	pixelFormat  = cat([]byte{0, 0, 0, 0}, []byte{32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0})
	encodings    = cat([]byte{2, 0, 0, 3}, be32(7), be32(0), be32(0xffffff21))
	updateReq    = []byte{3, 1, 0, 0, 0, 0, 4, 0, 3, 0}
	keyDown      = cat([]byte{4, 1, 0, 0}, be32(0x61))
	pointer      = []byte{5, 1, 0, 10, 0, 20}
	cutText      = cat([]byte{6, 0, 0, 0}, be32(5), []byte("hello"))
	extCutText   = cat([]byte{6, 0, 0, 0}, be32(uint32(0xffffffff-3)), []byte{1, 2, 3, 4}) // length -4
	fence        = cat([]byte{248, 0, 0, 0}, be32(0x80000002), []byte{3, 'a', 'b', 'c'})
	contUpdates  = []byte{150, 1, 0, 0, 0, 0, 4, 0, 3, 0}
	desktopSize  = cat([]byte{251, 0, 5, 0, 3, 0, 1, 0}, make([]byte, 16))
	qemuKey      = cat([]byte{255, 0, 0, 1}, be32(0x61), be32(30))
	setScale     = []byte{8, 2, 0, 0}
	xvp          = []byte{250, 0, 1, 2}
	viewMessages = cat(pixelFormat, encodings, updateReq, fence, contUpdates, setScale)
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func TestFilter(t *testing.T) {
	tests := []struct {
		name     string
		viewOnly bool
		in       []byte
		want     []byte
		dropped  int
		err      string // a part of the error, "" for none
	}{
		{name: "handshake forces shared", in: hello, want: helloShared},
		{name: "handshake 3.3", in: hello33, want: hello33Out},
		{name: "handshake 3.7", in: cat([]byte("RFB 003.007\n"), []byte{1, 1}), want: cat([]byte("RFB 003.007\n"), []byte{1, 1})},
		{name: "every message passes in control mode",
			in:   cat(hello, viewMessages, keyDown, pointer, cutText, extCutText, desktopSize, qemuKey, xvp),
			want: cat(helloShared, viewMessages, keyDown, pointer, cutText, extCutText, desktopSize, qemuKey, xvp)},
		{name: "view only drops input", viewOnly: true,
			in:      cat(hello, pixelFormat, keyDown, pointer, encodings, cutText, updateReq, extCutText, desktopSize, qemuKey, xvp, fence, contUpdates, setScale),
			want:    cat(helloShared, pixelFormat, encodings, updateReq, fence, contUpdates, setScale),
			dropped: 7},
		{name: "view only keeps what shows the desktop", viewOnly: true,
			in: cat(hello, viewMessages), want: cat(helloShared, viewMessages)},
		{name: "empty clipboard", viewOnly: true,
			in: cat(hello, []byte{6, 0, 0, 0}, be32(0), updateReq), want: cat(helloShared, updateReq), dropped: 1},
		{name: "no encodings", in: cat(hello, []byte{2, 0, 0, 0}, updateReq), want: cat(helloShared, []byte{2, 0, 0, 0}, updateReq)},
		{name: "unknown message type", in: cat(hello, updateReq, []byte{7, 0, 0, 0}),
			want: cat(helloShared, updateReq), err: "unknown client message type 7"},
		{name: "unknown version", in: []byte("RFB 004.001\n"), err: `unsupported protocol version "RFB 004.001\n"`},
		{name: "not RFB", in: []byte("GET / HTTP/1.1\r\n"), err: "unsupported protocol version"},
		{name: "VNC auth refused", in: cat([]byte("RFB 003.008\n"), []byte{2}), want: []byte("RFB 003.008\n"),
			err: "security type 2 is not supported"},
		{name: "too many encodings", in: cat(hello, []byte{2, 0, 0xff, 0xff}), want: helloShared, err: "65535 encodings"},
		{name: "long fence", in: cat(hello, []byte{248, 0, 0, 0}, be32(0), []byte{65}), want: helloShared, err: "ClientFence payload of 65 bytes"},
		{name: "huge clipboard", in: cat(hello, []byte{6, 0, 0, 0}, be32(1<<30)), want: helloShared, err: "clipboard text of 1073741824 bytes"},
		{name: "QEMU audio", in: cat(hello, []byte{255, 1, 0, 0}), want: helloShared, err: "QEMU client message subtype 1"},
	}
	// Every case is run whole, cut at every byte, and cut after each
	// byte, as WebSocket frames may cut it.
	splits := map[string]func([]byte) [][]byte{
		"whole": func(b []byte) [][]byte { return [][]byte{b} },
		"bytes": func(b []byte) [][]byte {
			var out [][]byte
			for i := range b {
				out = append(out, b[i:i+1])
			}
			return out
		},
		"halves": func(b []byte) [][]byte { return [][]byte{b[:len(b)/2], b[len(b)/2:]} },
		"sevens": func(b []byte) [][]byte {
			var out [][]byte
			for len(b) > 7 {
				out = append(out, b[:7])
				b = b[7:]
			}
			return append(out, b)
		},
	}
	for _, tt := range tests {
		for how, split := range splits {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				var got bytes.Buffer
				f := NewFilter(&got, tt.viewOnly)
				var err error
				for _, chunk := range split(tt.in) {
					if _, err = f.Write(chunk); err != nil {
						break
					}
				}
				switch {
				case tt.err == "" && err != nil:
					t.Fatalf("error %v, want none", err)
				case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrProtocol)):
					t.Fatalf("error %v, want ErrProtocol with %q", err, tt.err)
				}
				if diff := cmp.Diff(tt.want, got.Bytes()); diff != "" && !(len(tt.want) == 0 && got.Len() == 0) {
					t.Errorf("passed bytes (-want +got):\n%s", diff)
				}
				if f.Dropped() != tt.dropped {
					t.Errorf("dropped %d messages, want %d", f.Dropped(), tt.dropped)
				}
			})
		}
	}
}

// TestFilterLargeClipboardStreams checks that a large clipboard text goes
// through without being gathered first, and that a view-only filter skips
// it and stays in step.
func TestFilterLargeClipboardStreams(t *testing.T) {
	text := bytes.Repeat([]byte("x"), 1<<20)
	msg := cat([]byte{6, 0, 0, 0}, be32(uint32(len(text))), text)
	for _, viewOnly := range []bool{false, true} {
		var got bytes.Buffer
		f := NewFilter(&got, viewOnly)
		in := cat(hello, msg, pointer)
		for len(in) > 0 {
			n := min(len(in), 4096)
			if _, err := f.Write(in[:n]); err != nil {
				t.Fatal(err)
			}
			in = in[n:]
		}
		want := cat(helloShared, msg, pointer)
		if viewOnly {
			want = helloShared
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("viewOnly=%v: passed %d bytes, want %d", viewOnly, got.Len(), len(want))
		}
		if cap(f.pending) > 64 {
			t.Errorf("viewOnly=%v: the filter gathered %d bytes", viewOnly, cap(f.pending))
		}
	}
}

func FuzzFilter(f *testing.F) {
	f.Add(cat(hello, viewMessages, keyDown, pointer, cutText), true)
	f.Add(cat(hello33, extCutText, desktopSize, qemuKey), false)
	f.Fuzz(func(t *testing.T, in []byte, viewOnly bool) {
		var whole, split bytes.Buffer
		_, errWhole := NewFilter(&whole, viewOnly).Write(in)
		fs := NewFilter(&split, viewOnly)
		var errSplit error
		for i := 0; i < len(in) && errSplit == nil; i += 3 {
			_, errSplit = fs.Write(in[i:min(i+3, len(in))])
		}
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole: %v; in pieces: %v", errWhole, errSplit)
		}
		if errWhole == nil && !bytes.Equal(whole.Bytes(), split.Bytes()) {
			t.Fatalf("whole and in pieces pass different bytes")
		}
	})
}
