package pngenc

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/cubicle-dev/cubicle/desktop"
)

const pngSignature = "\x89PNG\r\n\x1a\n"

// zlib framing around the strips (RFC 1950, RFC 1951).
const (
	// zlibHeader: deflate with a 32 KiB window, "fastest" level hint;
	// 0x7801 is a multiple of 31 as the header check requires.
	zlibHeader = "\x78\x01"
	// finalBlock: an empty final block with fixed Huffman codes (BFINAL=1,
	// BTYPE=01, then the end-of-block code 0000000), padded to a byte.
	finalBlock = "\x03\x00"
)

// maxChunk is the largest PNG chunk length.
const maxChunk = 1<<31 - 1

// appendPNG appends a PNG of a w x h RGB image whose IDAT stream is made of
// strips.
func appendPNG(dst []byte, w, h int, strips []strip) ([]byte, error) {
	zlen := len(zlibHeader) + len(finalBlock) + 4
	for i := range strips {
		zlen += len(strips[i].z)
	}
	if zlen > maxChunk {
		return dst, fmt.Errorf("pngenc: %d bytes of compressed pixels do not fit a PNG chunk: %w", zlen, desktop.ErrTooLarge)
	}
	dst = slices.Grow(dst, len(pngSignature)+(12+13)+(12+zlen)+12)
	dst = append(dst, pngSignature...)

	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8] = 8  // bit depth
	ihdr[9] = 2  // colour type: truecolour (RGB)
	ihdr[10] = 0 // compression: deflate
	ihdr[11] = 0 // filter method: adaptive, five types
	ihdr[12] = 0 // no interlace
	dst = appendChunk(dst, "IHDR", ihdr[:])

	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(zlen))
	dst = append(dst, "IDAT"...)
	dst = append(dst, zlibHeader...)
	adler := uint32(1)
	for i := range strips {
		s := &strips[i]
		dst = append(dst, s.z...)
		adler = adlerCombine(adler, s.adler, s.n)
	}
	dst = append(dst, finalBlock...)
	dst = binary.BigEndian.AppendUint32(dst, adler)
	dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start+4:]))

	return appendChunk(dst, "IEND", nil), nil
}

// appendChunk appends a PNG chunk: length, type, data, CRC-32 of type and
// data.
func appendChunk(dst []byte, typ string, data []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(data)))
	start := len(dst)
	dst = append(dst, typ...)
	dst = append(dst, data...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
}
