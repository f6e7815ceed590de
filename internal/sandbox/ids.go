package sandbox

import (
	"crypto/rand"
	"encoding/hex"
)

// idLen is the length of a sandbox ID.
const idLen = 20

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// NewID returns a fresh sandbox ID: 20 characters of [a-z0-9] from
// crypto/rand.
func NewID() string {
	var out [idLen]byte
	var buf [32]byte
	n := 0
	for n < idLen {
		rand.Read(buf[:])
		for _, b := range buf {
			// 252 = 7*36: bytes at or above it would favour some letters.
			if b >= 252 || n == idLen {
				continue
			}
			out[n] = idAlphabet[int(b)%len(idAlphabet)]
			n++
		}
	}
	return string(out[:])
}

// ValidID reports whether s has the form of a sandbox ID.
func ValidID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// newToken returns a fresh access token: 24 random bytes in hex.
func newToken() string {
	var b [24]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
