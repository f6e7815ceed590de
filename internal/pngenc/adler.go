package pngenc

import "encoding/binary"

// adlerMod is the Adler-32 modulus (RFC 1950).
const adlerMod = 65521

// adlerBlock is the number of bytes adlerUpdate sums in 16-bit lanes before
// it folds them into the scalar sums: 16 words of 8 bytes, so that no lane
// can overflow (see below).
const adlerBlock = 128

// adlerUpdate returns the Adler-32 of the data summed by adler followed by p.
// It is several times faster than hash/adler32, which adds one byte at a
// time: it adds eight bytes at a time in 16-bit lanes.
func adlerUpdate(adler uint32, p []byte) uint32 {
	const lanes = 0x00ff00ff00ff00ff
	s1, s2 := uint64(adler&0xffff), uint64(adler>>16)
	for len(p) >= adlerBlock {
		// Word k (k = 0..15) holds bytes 8k+q (q = 0..7) of the block;
		// even lanes hold q = 0, 2, 4, 6 and odd lanes q = 1, 3, 5, 7.
		// a1 sums the bytes per lane (at most 16*255); a2 sums a1 after
		// each word, which weighs word k by 16-k (at most 136*255 per
		// lane). Both stay below 2^16.
		var a1e, a1o, a2e, a2o uint64
		b := p[:adlerBlock]
		for k := 0; k < adlerBlock; k += 8 {
			v := binary.LittleEndian.Uint64(b[k : k+8])
			a1e += v & lanes
			a1o += v >> 8 & lanes
			a2e += a1e
			a2o += a1o
		}
		p = p[adlerBlock:]
		// Byte j = 8k+q adds to s2 with weight 128-j = 8*(16-k) - q.
		s2 += adlerBlock*s1 + 8*(sumLanes(a2e)+sumLanes(a2o)) - weighLanes(a1e, 0, 2, 4, 6) - weighLanes(a1o, 1, 3, 5, 7)
		s1 += sumLanes(a1e) + sumLanes(a1o)
		s1 %= adlerMod
		s2 %= adlerMod
	}
	for _, c := range p {
		s1 += uint64(c)
		s2 += s1
	}
	s1 %= adlerMod
	s2 %= adlerMod
	return uint32(s2<<16 | s1)
}

// sumLanes adds the four 16-bit lanes of x.
func sumLanes(x uint64) uint64 {
	return x&0xffff + x>>16&0xffff + x>>32&0xffff + x>>48
}

// weighLanes returns the sum of x's four 16-bit lanes, lowest first,
// times w0..w3.
func weighLanes(x uint64, w0, w1, w2, w3 uint64) uint64 {
	return w0*(x&0xffff) + w1*(x>>16&0xffff) + w2*(x>>32&0xffff) + w3*(x>>48)
}

// adlerCombine returns the Adler-32 of A followed by B, given adler1 of A,
// adler2 of B and B's length len2 (zlib's adler32_combine).
func adlerCombine(adler1, adler2 uint32, len2 int) uint32 {
	rem := uint64(len2 % adlerMod)
	a1, b1 := uint64(adler1&0xffff), uint64(adler1>>16)
	a2, b2 := uint64(adler2&0xffff), uint64(adler2>>16)
	s1 := (a1 + a2 + adlerMod - 1) % adlerMod
	s2 := (rem*a1 + b1 + b2 + adlerMod - rem) % adlerMod
	return uint32(s2<<16 | s1)
}
