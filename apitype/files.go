package apitype

import "time"

// Types of FileEntry.
const (
	FileTypeFile    = "file"
	FileTypeDir     = "dir"
	FileTypeSymlink = "symlink"
	FileTypeOther   = "other"
)

// FileEntry describes a file: the answer of GET /v1/files/stat and
// POST /v1/files/mkdir, and an element of the answer of
// GET /v1/files/list on the agent.
type FileEntry struct {
	Name string `json:"name"`
	Path string `json:"path"`
	// Type is FileTypeFile, FileTypeDir, FileTypeSymlink or FileTypeOther.
	Type string `json:"type"`
	Size int64  `json:"size"`
	// Mode holds the Unix permission bits with setuid (0o4000), setgid
	// (0o2000) and sticky (0o1000).
	Mode          uint32    `json:"mode"`
	MTime         time.Time `json:"mtime"`
	SymlinkTarget string    `json:"symlink_target,omitempty"`
}

// WriteInfo is the answer of PUT /v1/files on the agent: the file written
// and its size in bytes.
type WriteInfo struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}
