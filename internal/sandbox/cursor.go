package sandbox

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Cursor is a position in the list of sandboxes, which is ordered by
// creation time and then ID. The zero Cursor is the start of the list.
type Cursor struct {
	Created time.Time
	ID      string
}

// IsZero reports whether c is the start of the list.
func (c Cursor) IsZero() bool { return c.ID == "" }

// cursorVersion starts every encoded cursor, so the format can change.
const cursorVersion = "c1"

// String encodes c as an opaque token for URLs; the zero Cursor is "".
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	raw := cursorVersion + "." + strconv.FormatInt(c.Created.UnixNano(), 10) + "." + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseCursor decodes what Cursor.String made. "" is the zero Cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	bad := &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "next",
		Message: "the cursor is not one this server made; pass the \"next\" value of the previous page unchanged"}
	if len(s) > 128 {
		return Cursor{}, bad
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return Cursor{}, bad
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 3 || parts[0] != cursorVersion || !ValidID(parts[2]) {
		return Cursor{}, bad
	}
	ns, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || ns <= 0 || parts[1] != strconv.FormatInt(ns, 10) {
		return Cursor{}, bad
	}
	return Cursor{Created: time.Unix(0, ns).UTC(), ID: parts[2]}, nil
}

// Skips reports whether a page that starts after c leaves out the record
// at (created, id): it comes at or before c.
func (c Cursor) Skips(created time.Time, id string) bool {
	if c.IsZero() {
		return false
	}
	if !created.Equal(c.Created) {
		return created.Before(c.Created)
	}
	return id <= c.ID
}
