//go:build !amd64

package local

// No filter is defined for this architecture yet: sandboxes cannot start.
const (
	nativeArch   = 0
	foreignNrBit = 0
)

var deniedSyscalls, ptraceSyscalls []uint32
