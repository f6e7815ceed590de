package e2bapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// HeaderNextToken carries the cursor of the next page of a list; it is
// absent on the last page.
const HeaderNextToken = "X-Next-Token"

// maxListed bounds how many sandboxes one list request reads from the
// store.
const maxListed = 100 * sandbox.MaxPage

// ListQuery is the query of GET /v2/sandboxes.
type ListQuery struct {
	// States are the sandbox states to list; running includes starting.
	States   []sandbox.State
	Metadata map[string]string
	// StartedAfter, when set, keeps sandboxes started after it.
	StartedAfter time.Time
	Template     string
	// Desc lists the newest first (E2B's default).
	Desc  bool
	Limit int
	// After is where the page starts: after this position in the order.
	After sandbox.Cursor
}

// ParseListQuery reads the query of GET /v2/sandboxes as E2B's SDK
// encodes it:
//
//	state=running,paused       form style, not exploded; default both
//	metadata=<encoded pairs>   see ParseMetadata
//	startedAfter=<RFC 3339>    template=<name>   order=asc|desc (default desc)
//	limit=1..100 (default 100) nextToken=<X-Next-Token of the previous page>
//
// Other parameters are ignored, as E2B's API ignores them.
func ParseListQuery(v url.Values) (ListQuery, error) {
	q := ListQuery{Desc: true, Limit: sandbox.MaxPage}
	for _, val := range v["state"] {
		for s := range strings.SplitSeq(val, ",") {
			var add []sandbox.State
			switch strings.TrimSpace(s) {
			case "running":
				add = []sandbox.State{sandbox.StateStarting, sandbox.StateRunning}
			case "paused":
				add = []sandbox.State{sandbox.StatePaused}
			case "":
				continue
			default:
				return q, badRequest("state %.32q is not running or paused", s)
			}
			for _, st := range add {
				if !slices.Contains(q.States, st) {
					q.States = append(q.States, st)
				}
			}
		}
	}
	if raw := v.Get("metadata"); raw != "" {
		md, err := ParseMetadata(raw)
		if err != nil {
			return q, err
		}
		q.Metadata = md
	}
	if s := v.Get("startedAfter"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, badRequest("startedAfter %.40q is not an RFC 3339 time such as 2025-01-02T15:04:05Z", s)
		}
		q.StartedAfter = t
	}
	q.Template = v.Get("template")
	switch o := v.Get("order"); o {
	case "", "desc":
	case "asc":
		q.Desc = false
	default:
		return q, badRequest("order %.16q is not asc or desc", o)
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > sandbox.MaxPage {
			return q, badRequest("limit must be a whole number from 1 to %d, not %.32q", sandbox.MaxPage, s)
		}
		q.Limit = n
	}
	if s := v.Get("nextToken"); s != "" {
		c, err := sandbox.ParseCursor(s)
		if err != nil {
			return q, badRequest("nextToken is not one this server made; pass the X-Next-Token of the previous page unchanged")
		}
		q.After = c
	}
	return q, nil
}

// ParseMetadata decodes the metadata filter the way E2B's server does.
// The SDK percent-encodes every key and value, joins them as a query
// string and the whole string is encoded once more on the wire, so after
// the usual query decoding raw still holds one level of encoding:
// unescape it, split on & and then on = (exactly one per pair), and
// unescape each key and value.
func ParseMetadata(raw string) (map[string]string, error) {
	s, err := url.QueryUnescape(raw)
	if err != nil {
		return nil, badRequest("metadata filter %.64q is not percent-encoded", raw)
	}
	md := make(map[string]string)
	for pair := range strings.SplitSeq(s, "&") {
		if pair == "" {
			continue
		}
		parts := strings.Split(pair, "=")
		if len(parts) != 2 {
			return nil, badRequest("metadata filter pair %.64q must be key=value", pair)
		}
		k, err1 := url.QueryUnescape(parts[0])
		v, err2 := url.QueryUnescape(parts[1])
		if err1 != nil || err2 != nil || k == "" {
			return nil, badRequest("metadata filter pair %.64q must be key=value, each percent-encoded", pair)
		}
		if utf8.RuneCountInString(k) > sandbox.MaxMetadataKey || utf8.RuneCountInString(v) > sandbox.MaxMetadataValue {
			return nil, badRequest("metadata filter key %.32q or its value is too long", k)
		}
		md[k] = v
		if len(md) > sandbox.MaxMetadataKeys {
			return nil, badRequest("at most %d metadata pairs may be given", sandbox.MaxMetadataKeys)
		}
	}
	return md, nil
}

// page is one page of a list and where the next one starts ("" at the
// end).
type page struct {
	recs []sandbox.Record
	next string
}

// listPage reads every sandbox of owner that q selects, in q's order,
// and cuts the page that starts after q.After.
func (h *Handler) listPage(ctx context.Context, owner string, q ListQuery) (page, error) {
	states := q.States
	if len(states) == 0 {
		states = []sandbox.State{sandbox.StateStarting, sandbox.StateRunning, sandbox.StatePaused}
	}
	template := q.Template
	if alias, ok := h.cfg.TemplateAliases[template]; ok {
		template = alias
	}
	var all []sandbox.Record
	var after sandbox.Cursor
	for {
		p, err := h.m.List(ctx, owner, sandbox.ListQuery{States: states, Metadata: q.Metadata, After: after})
		if err != nil {
			return page{}, err
		}
		for _, rec := range p.Sandboxes {
			if !q.StartedAfter.IsZero() && !rec.Created.After(q.StartedAfter) {
				continue
			}
			if template != "" && rec.Template != template {
				continue
			}
			all = append(all, rec)
		}
		if p.Next.IsZero() {
			break
		}
		if len(all) >= maxListed {
			return page{}, fmt.Errorf("e2bapi: list: owner %s has over %d sandboxes", owner, maxListed)
		}
		after = p.Next
	}
	if q.Desc {
		slices.Reverse(all)
	}
	if !q.After.IsZero() {
		i := 0
		for i < len(all) && !beyond(all[i], q.After, q.Desc) {
			i++
		}
		all = all[i:]
	}
	var out page
	if len(all) > q.Limit {
		all = all[:q.Limit]
		last := all[len(all)-1]
		out.next = sandbox.Cursor{Created: last.Created, ID: last.ID}.String()
	}
	out.recs = all
	return out, nil
}

// beyond reports whether rec comes after the position c in the order
// (oldest first, or newest first with desc).
func beyond(rec sandbox.Record, c sandbox.Cursor, desc bool) bool {
	if rec.Created.Equal(c.Created) && rec.ID == c.ID {
		return false
	}
	return c.Skips(rec.Created, rec.ID) == desc
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, owner string) error {
	q, err := ParseListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	p, err := h.listPage(r.Context(), owner, q)
	if err != nil {
		return err
	}
	out := make([]ListedSandbox, len(p.recs))
	for i, rec := range p.recs {
		out[i] = h.listed(rec)
	}
	if p.next != "" {
		w.Header().Set(HeaderNextToken, p.next)
	}
	return writeJSON(w, http.StatusOK, out)
}

// listRunning serves GET /sandboxes, the list of older SDKs: every
// running sandbox, filtered by metadata, in one answer.
func (h *Handler) listRunning(w http.ResponseWriter, r *http.Request, owner string) error {
	q := ListQuery{States: []sandbox.State{sandbox.StateStarting, sandbox.StateRunning}, Desc: true, Limit: maxListed}
	if raw := r.URL.Query().Get("metadata"); raw != "" {
		md, err := ParseMetadata(raw)
		if err != nil {
			return err
		}
		q.Metadata = md
	}
	p, err := h.listPage(r.Context(), owner, q)
	if err != nil {
		return err
	}
	out := make([]ListedSandbox, len(p.recs))
	for i, rec := range p.recs {
		out[i] = h.listed(rec)
	}
	return writeJSON(w, http.StatusOK, out)
}
