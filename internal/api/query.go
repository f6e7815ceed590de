package api

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

func badQuery(field, format string, args ...any) error {
	return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ParseListQuery reads the query of GET /v1/sandboxes:
//
//	state=running,paused   states, comma-separated and/or repeated
//	metadata=k=v           a metadata pair; repeated pairs are ANDed
//	limit=N                page size, 1 to 100 (default 100)
//	next=CURSOR            the "next" of the previous page
//
// Anything else is an error of code invalid_argument.
func ParseListQuery(v url.Values) (sandbox.ListQuery, error) {
	var q sandbox.ListQuery
	for _, name := range slices.Sorted(maps.Keys(v)) {
		vals := v[name]
		switch name {
		case "state":
			for _, val := range vals {
				for s := range strings.SplitSeq(val, ",") {
					st := sandbox.State(strings.TrimSpace(s))
					if !st.Valid() {
						return sandbox.ListQuery{}, badQuery("state",
							"state %.32q is not one of starting, running, paused, killed", s)
					}
					if !slices.Contains(q.States, st) {
						q.States = append(q.States, st)
					}
				}
			}
		case "metadata":
			for _, val := range vals {
				k, mv, ok := strings.Cut(val, "=")
				if !ok || k == "" {
					return sandbox.ListQuery{}, badQuery("metadata", "metadata=%.64q must be key=value", val)
				}
				if utf8.RuneCountInString(k) > sandbox.MaxMetadataKey || utf8.RuneCountInString(mv) > sandbox.MaxMetadataValue {
					return sandbox.ListQuery{}, badQuery("metadata", "metadata key %.32q or its value is too long", k)
				}
				if q.Metadata == nil {
					q.Metadata = make(map[string]string)
				}
				if old, dup := q.Metadata[k]; dup && old != mv {
					return sandbox.ListQuery{}, badQuery("metadata", "metadata key %.32q is given twice with different values", k)
				}
				q.Metadata[k] = mv
				if len(q.Metadata) > sandbox.MaxMetadataKeys {
					return sandbox.ListQuery{}, badQuery("metadata", "at most %d metadata pairs may be given", sandbox.MaxMetadataKeys)
				}
			}
		case "limit":
			if len(vals) != 1 {
				return sandbox.ListQuery{}, badQuery("limit", "limit is given %d times; give it once", len(vals))
			}
			n, err := strconv.Atoi(vals[0])
			if err != nil || n < 1 || n > sandbox.MaxPage {
				return sandbox.ListQuery{}, badQuery("limit", "limit must be a whole number from 1 to %d, not %.32q", sandbox.MaxPage, vals[0])
			}
			q.Limit = n
		case "next":
			if len(vals) != 1 {
				return sandbox.ListQuery{}, badQuery("next", "next is given %d times; give it once", len(vals))
			}
			c, err := sandbox.ParseCursor(vals[0])
			if err != nil {
				return sandbox.ListQuery{}, err
			}
			q.After = c
		default:
			field := name
			if field == "" {
				field = "query"
			}
			return sandbox.ListQuery{}, badQuery(field, "unknown query parameter %.32q; the list takes state, metadata, limit and next", name)
		}
	}
	return q, nil
}
