package pngenc

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/adler32"
	"hash/crc32"
	"io"
	"math"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/google/go-cmp/cmp"
)

func TestEncodeDecodesToInput(t *testing.T) {
	big := textFrame(300, 200, 7)
	padded := gradientFrame(61, 45)
	padded2 := newFrame(61, 45, 13) // stride > 4*width
	for y := range padded.Height {
		copy(padded2.Pix[y*padded2.Stride:], padded.Pix[y*padded.Stride:y*padded.Stride+4*padded.Width])
	}
	frames := []struct {
		name string
		f    Frame
	}{
		{"noise", noiseFrame(97, 71, 1)},
		{"flat", flatFrame(128, 64, 0x33, 0x66, 0x99)},
		{"flat white", flatFrame(50, 40, 255, 255, 255)},
		{"gradient", gradientFrame(200, 150)},
		{"text-like", textFrame(320, 200, 3)},
		{"desktop capture", loadFrame(t, "desktop-1024x768.png")},
		{"firefox capture", loadFrame(t, "firefox-1024x768.png")},
		{"repeated text rows", repeatFrame(textFrame(90, 20, 8), 3)},
		{"repeated noise rows", repeatFrame(noiseFrame(33, 20, 9), 4)},
		{"repeated gradient rows", repeatFrame(gradientFrame(64, 30), 2)},
		{"1x1", noiseFrame(1, 1, 2)},
		{"3x7", noiseFrame(3, 7, 3)},
		{"1x100", gradientFrame(1, 100)},
		{"100x1", gradientFrame(100, 1)},
		{"2x2", noiseFrame(2, 2, 4)},
		{"5x33", textFrame(5, 33, 5)},
		{"1023x97", textFrame(1023, 97, 6)},
		{"stride > 4*width", padded2},
		{"sub-rectangle", subFrame(big, 17, 9, 131, 77)},
		{"sub-rectangle at the end", subFrame(big, 300-45, 200-33, 45, 33)},
	}
	opts := []Options{
		{},
		{StripHeight: 1, Workers: 3},
		{StripHeight: 7, Workers: 1},
		{StripHeight: 16, Workers: 4, Level: 2},
		{StripHeight: 1000, Level: 9},
	}
	for _, fr := range frames {
		for _, o := range opts {
			t.Run(fmt.Sprintf("%s/%+v", fr.name, o), func(t *testing.T) {
				before := bytes.Clone(fr.f.Pix)
				prefix := []byte("keep")
				out, err := New(o).Encode(prefix, fr.f, nil)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				if !bytes.HasPrefix(out, []byte("keep")) {
					t.Fatalf("Encode did not append to dst: output starts %q", out[:min(8, len(out))])
				}
				if d := decodeDiff(out[4:], fr.f); d != "" {
					t.Error(d)
				}
				if !bytes.Equal(fr.f.Pix, before) {
					t.Error("Encode modified the frame's pixels")
				}
			})
		}
	}
}

// Each strip must decompress on its own: no back-reference may reach into an
// earlier strip, or a cached strip would decode against changed bytes.
func TestStripsAreIndependent(t *testing.T) {
	f := loadFrame(t, "desktop-1024x768.png")
	for _, sh := range []int{1, 5, 32, 200} {
		t.Run(fmt.Sprintf("strip height %d", sh), func(t *testing.T) {
			e := New(Options{StripHeight: sh})
			if _, err := e.Encode(nil, f, nil); err != nil {
				t.Fatalf("Encode: %v", err)
			}
			var all []byte
			for i, s := range e.strips {
				// The strip plus a final empty block is a complete raw
				// DEFLATE stream with an empty dictionary.
				stream := append(bytes.Clone(s.z), finalBlock...)
				raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(stream)))
				if err != nil {
					t.Fatalf("strip %d does not decompress alone: %v", i, err)
				}
				rows := min(sh, f.Height-i*sh)
				if got, want := len(raw), rows*(1+3*f.Width); got != want || s.n != want {
					t.Fatalf("strip %d: %d bytes decompressed, recorded %d, want %d", i, got, s.n, want)
				}
				if got, want := s.adler, adler32.Checksum(raw); got != want {
					t.Errorf("strip %d Adler-32: got %08x, want %08x", i, got, want)
				}
				if raw[0] == filterUp {
					t.Errorf("strip %d starts with an Up row, which depends on the strip above", i)
				}
				all = append(all, raw...)
			}
			if got, want := e.Stats(), (Stats{Strips: len(e.strips), Encoded: len(e.strips)}); got != want {
				t.Errorf("Stats: got %+v, want %+v", got, want)
			}
			// The PNG's IDAT holds exactly these strips, and the zlib
			// reader checks the combined Adler-32.
			raw, err := io.ReadAll(idatReader(t, e, f))
			if err != nil {
				t.Fatalf("read the IDAT zlib stream: %v", err)
			}
			if !bytes.Equal(raw, all) {
				t.Errorf("IDAT stream: %d bytes, differs from the %d bytes of the strips", len(raw), len(all))
			}
		})
	}
}

// idatReader encodes f again, all strips clean, and returns a zlib reader of
// its IDAT chunk.
func idatReader(t *testing.T, e *Encoder, f Frame) io.Reader {
	t.Helper()
	out, err := e.Encode(nil, f, func(int, int) bool { return false })
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	p := out[len(pngSignature):]
	for len(p) >= 12 {
		n := binary.BigEndian.Uint32(p)
		typ, data := string(p[4:8]), p[8:8+n]
		if got, want := binary.BigEndian.Uint32(p[8+n:]), crc32.ChecksumIEEE(p[4:8+n]); got != want {
			t.Fatalf("%s chunk CRC: got %08x, want %08x", typ, got, want)
		}
		if typ == "IDAT" {
			zr, err := zlib.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("IDAT zlib header: %v", err)
			}
			return zr
		}
		p = p[12+n:]
	}
	t.Fatal("no IDAT chunk")
	return nil
}

func TestDirtyStripsAreReencoded(t *testing.T) {
	a := textFrame(200, 150, 1)
	e := New(Options{StripHeight: 16, Workers: 2})
	if _, err := e.Encode(nil, a, nil); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	b := a.clone()
	changed := []int{0, 40, 41, 149} // strips 0, 2 and 9 of 10
	for _, y := range changed {
		for x := range b.Width {
			b.set(x, y, byte(x), byte(y), 0x80)
		}
	}
	var calls [][2]int
	dirty := func(y0, y1 int) bool {
		calls = append(calls, [2]int{y0, y1})
		for _, y := range changed {
			if y >= y0 && y < y1 {
				return true
			}
		}
		return false
	}
	out, err := e.Encode(nil, b, dirty)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if d := decodeDiff(out, b); d != "" {
		t.Error(d)
	}
	wantCalls := [][2]int{{0, 16}, {16, 32}, {32, 48}, {48, 64}, {64, 80}, {80, 96}, {96, 112}, {112, 128}, {128, 144}, {144, 150}}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("dirty calls (-want +got):\n%s", diff)
	}
	if got, want := e.Stats(), (Stats{Strips: 10, Encoded: 3, Reused: 7}); got != want {
		t.Errorf("Stats: got %+v, want %+v", got, want)
	}
	// The same frame again with nothing dirty reuses everything and is
	// byte for byte the same PNG.
	again, err := e.Encode(nil, b, func(int, int) bool { return false })
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if !bytes.Equal(again, out) {
		t.Error("an all-clean Encode of the same frame produced different bytes")
	}
	if got, want := e.Stats(), (Stats{Strips: 10, Reused: 10}); got != want {
		t.Errorf("Stats: got %+v, want %+v", got, want)
	}
}

// A dirty func that says nothing changed must make Encode reuse the old
// strips: the output shows the old frame. This proves the cache is used.
func TestCleanStripsComeFromTheCache(t *testing.T) {
	a := gradientFrame(90, 70)
	b := noiseFrame(90, 70, 9)
	e := New(Options{StripHeight: 8})
	if _, err := e.Encode(nil, a, nil); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	out, err := e.Encode(nil, b, func(y0, y1 int) bool { return y0 == 8 })
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	// Rows 8..15 come from b, all others from a.
	want := a.clone()
	for y := 8; y < 16; y++ {
		copy(want.Pix[y*want.Stride:(y+1)*want.Stride], b.Pix[y*b.Stride:])
	}
	if d := decodeDiff(out, want); d != "" {
		t.Error(d)
	}
	if got, want := e.Stats(), (Stats{Strips: 9, Encoded: 1, Reused: 8}); got != want {
		t.Errorf("Stats: got %+v, want %+v", got, want)
	}
}

func TestSizeChangeReencodesEverything(t *testing.T) {
	never := func(int, int) bool { return false }
	steps := []struct {
		name string
		f    Frame
	}{
		{"first", textFrame(64, 64, 1)},
		{"shorter", textFrame(64, 48, 2)},
		{"narrower", textFrame(40, 48, 3)},
		{"wider", noiseFrame(80, 48, 4)},
		{"taller, same strip count", noiseFrame(80, 50, 5)},
	}
	e := New(Options{StripHeight: 16})
	for _, s := range steps {
		out, err := e.Encode(nil, s.f, never)
		if err != nil {
			t.Fatalf("%s: Encode: %v", s.name, err)
		}
		if d := decodeDiff(out, s.f); d != "" {
			t.Errorf("%s: %s", s.name, d)
		}
		n := (s.f.Height + 15) / 16
		if got, want := e.Stats(), (Stats{Strips: n, Encoded: n}); got != want {
			t.Errorf("%s: Stats: got %+v, want %+v", s.name, got, want)
		}
	}
}

func TestResetForgetsTheCache(t *testing.T) {
	a, b := textFrame(50, 50, 1), textFrame(50, 50, 2)
	e := New(Options{StripHeight: 10})
	if _, err := e.Encode(nil, a, nil); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	e.Reset()
	out, err := e.Encode(nil, b, func(int, int) bool { return false })
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if d := decodeDiff(out, b); d != "" {
		t.Error(d)
	}
	if got, want := e.Stats(), (Stats{Strips: 5, Encoded: 5}); got != want {
		t.Errorf("Stats: got %+v, want %+v", got, want)
	}
}

func TestOptionsOutOfRangeWork(t *testing.T) {
	f := textFrame(70, 50, 4)
	for _, o := range []Options{
		{StripHeight: -3, Level: -5, Workers: -1},
		{StripHeight: math.MaxInt, Level: 42, Workers: 1000},
	} {
		e := New(o)
		out, err := e.Encode(nil, f, nil)
		if err != nil {
			t.Fatalf("%+v: Encode: %v", o, err)
		}
		if d := decodeDiff(out, f); d != "" {
			t.Errorf("%+v: %s", o, d)
		}
	}
}

func TestEncodeRejectsBadFrames(t *testing.T) {
	ok := newFrame(10, 10, 0)
	tests := []struct {
		name string
		f    Frame
		want error
	}{
		{"zero width", Frame{Pix: ok.Pix, Stride: 40, Width: 0, Height: 10}, desktop.ErrInvalid},
		{"negative height", Frame{Pix: ok.Pix, Stride: 40, Width: 10, Height: -1}, desktop.ErrInvalid},
		{"stride too small", Frame{Pix: ok.Pix, Stride: 39, Width: 10, Height: 10}, desktop.ErrInvalid},
		{"pixels too short", Frame{Pix: ok.Pix[:9*40+39], Stride: 40, Width: 10, Height: 10}, desktop.ErrInvalid},
		{"nil pixels", Frame{Stride: 40, Width: 10, Height: 10}, desktop.ErrInvalid},
		{"too large", Frame{Pix: ok.Pix, Stride: 4 << 20, Width: 1 << 20, Height: 1 << 20}, desktop.ErrTooLarge},
	}
	e := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("x")
			out, err := e.Encode(dst, tt.f, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Encode error: got %v, want %v", err, tt.want)
			}
			if string(out) != "x" {
				t.Errorf("dst after a failed Encode: got %q, want %q", out, "x")
			}
		})
	}
	// The last row needs only 4*width bytes, not a whole stride.
	padded := textFrame(10, 10, 1)
	padded.Stride, padded.Pix = 48, make([]byte, 10*48)
	for y := range 10 {
		for x := range 10 {
			padded.set(x, y, byte(x), byte(y), byte(x*y))
		}
	}
	padded.Pix = padded.Pix[:9*48+40]
	out, err := e.Encode(nil, padded, nil)
	if err != nil {
		t.Fatalf("Encode of a frame whose last row is exactly 4*width bytes: %v", err)
	}
	if d := decodeDiff(out, padded); d != "" {
		t.Error(d)
	}
}
