package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/cubicle-dev/cubicle/desktop"
)

// transport sends requests to one base URL with a fixed set of headers.
type transport struct {
	base   string      // scheme://host[/prefix], no trailing slash
	header http.Header // sent with every request (token, user agent)
	client *http.Client
	owned  *http.Transport // the client's transport when we made it
	peer   string          // what answers at base, for messages; "" is "agent"
}

// peerName names what answers at the base URL in messages.
func (t *transport) peerName() string {
	if t.peer == "" {
		return "agent"
	}
	return t.peer
}

// sendRaw runs one request with body sent as it is, of type contentType.
// The caller closes the response body with closeBody.
func (t *transport) sendRaw(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string) (*http.Response, error) {
	u := t.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	if body != nil && contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, t.transportError(ctx, method, u, err)
	}
	return resp, nil
}

// Bounds on what is read from a response that is not the expected one.
const (
	maxErrorBody = 1 << 20  // an error body is read up to this much
	maxDrain     = 64 << 10 // left-over body drained so the connection is reused
	quoteLen     = 160      // bytes of a foreign body quoted in an error
)

// send runs one request, JSON-encoding in as the body when it is not nil.
// The caller closes the response body with closeBody.
func (t *transport) send(ctx context.Context, method, path string, query url.Values, in any) (*http.Response, error) {
	u := t.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("client: %s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, t.transportError(ctx, method, u, err)
	}
	return resp, nil
}

// call runs one request and decodes a 2xx JSON answer into out (nil: the
// body is discarded). Any other status gives the agent's *desktop.Error.
func (t *transport) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	resp, err := t.send(ctx, method, path, query, in)
	if err != nil {
		return err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode/100 != 2 {
		return t.statusError(method, path, resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return &desktop.Error{Code: desktop.CodeInternal, Index: -1,
			Message: fmt.Sprintf("client: %s %s%s: %s answer is not the expected JSON: %v", method, t.base, path, resp.Status, err)}
	}
	return nil
}

// closeBody drains what is left of a body, so that the connection goes back
// to the pool, and closes it.
func closeBody(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, maxDrain))
	_ = b.Close()
}

// readBody reads a whole body, up to limit bytes when limit > 0.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	r := io.Reader(resp.Body)
	if limit > 0 {
		r = io.LimitReader(r, limit)
	}
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && (limit <= 0 || n <= limit) {
		buf.Grow(int(n))
	}
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// wireError is desktop.Error as it comes off the wire, where a missing
// index must read as -1, not as the first action.
type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Index   *int   `json:"index"`
	Field   string `json:"field"`
}

func (w *wireError) toError() *desktop.Error {
	e := &desktop.Error{Code: w.Code, Message: w.Message, Index: -1, Field: w.Field}
	if w.Index != nil {
		e.Index = *w.Index
	}
	if e.Message == "" {
		e.Message = "the agent reported " + w.Code
	}
	return e
}

// statusError reads a non-2xx response into the *desktop.Error it carries,
// or, when the body is not an agent error, into one made from the status.
func (t *transport) statusError(method, path string, resp *http.Response) error {
	body, _ := readBody(resp, maxErrorBody)
	var env struct {
		Error *wireError `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil && env.Error.Code != "" {
		return env.Error.toError()
	}
	return t.foreignError(method, path, resp, body)
}

// foreignError describes a response that did not come from the agent (a
// proxy's error page, say), with its status class and the start of its body.
func (t *transport) foreignError(method, path string, resp *http.Response, body []byte) *desktop.Error {
	return &desktop.Error{
		Code:  codeForStatus(resp.StatusCode),
		Index: -1,
		Message: fmt.Sprintf("client: %s %s%s: %s, not an answer from the %s (is something else at this URL, or a proxy in between?): %s",
			method, t.base, path, resp.Status, t.peerName(), quoteBody(body)),
	}
}

// codeForStatus is the error code that stands for an HTTP status.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return desktop.CodeBadRequest
	case http.StatusUnauthorized, http.StatusForbidden:
		return desktop.CodeUnauthorized
	case http.StatusNotFound:
		return desktop.CodeNotFound
	case http.StatusConflict:
		return desktop.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return desktop.CodeTooLarge
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return desktop.CodeTimeout
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return desktop.CodeUnavailable
	}
	if status >= 400 && status < 500 {
		return desktop.CodeBadRequest
	}
	return desktop.CodeInternal
}

// quoteBody quotes the start of a body on one line.
func quoteBody(b []byte) string {
	if len(bytes.TrimSpace(b)) == 0 {
		return "(empty body)"
	}
	cut := len(b) > quoteLen
	if cut {
		b = b[:quoteLen]
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), string(utf8.RuneError))), " ")
	if cut {
		return fmt.Sprintf("%q...", s)
	}
	return fmt.Sprintf("%q", s)
}

// callError is an error that belongs to a class and keeps its cause.
type callError struct {
	msg   string
	class error
	cause error
}

func (e *callError) Error() string   { return e.msg }
func (e *callError) Unwrap() []error { return []error{e.class, e.cause} }

// transportError explains a request that got no answer: the context ended,
// or the agent could not be reached.
func (t *transport) transportError(ctx context.Context, method, u string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	op := method + " " + redact(u)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return contextError("client: "+op, ctxErr)
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return &callError{msg: fmt.Sprintf("client: %s: timed out: %v", op, err), class: desktop.ErrTimeout, cause: err}
	}
	return &callError{
		msg:   fmt.Sprintf("client: %s: %s unreachable (is it running, and is %s its URL?): %v", op, t.peerName(), t.base, err),
		class: desktop.ErrUnavailable,
		cause: err,
	}
}

func redact(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return u
}
