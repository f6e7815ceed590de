package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

// QueryToken is the query parameter that carries a sandbox's access token
// for clients that cannot set headers (a browser opening the live view).
const QueryToken = "access_token"

// CookiePrefix starts the name of the cookie that carries a sandbox's access
// token; the sandbox id completes it.
const CookiePrefix = "cubicle_token_"

// HeaderTrafficToken is the header in which E2B's clients present a
// sandbox's trafficAccessToken to its ports.
const HeaderTrafficToken = "E2b-Traffic-Access-Token"

// credentials are the access tokens a request presents for one sandbox.
type credentials struct {
	header []string // X-Access-Token, E2b-Traffic-Access-Token and Authorization: Bearer
	query  []string // ?access_token=
	cookie []string // cubicle_token_<id>
}

func (c credentials) empty() bool {
	return len(c.header)+len(c.query)+len(c.cookie) == 0
}

// credentialsOf collects every token r presents for sandbox id.
func credentialsOf(r *http.Request, id string) credentials {
	var c credentials
	for _, name := range []string{"X-Access-Token", HeaderTrafficToken} {
		for _, v := range r.Header.Values(name) {
			if v != "" {
				c.header = append(c.header, v)
			}
		}
	}
	for _, v := range r.Header.Values("Authorization") {
		scheme, tok, found := strings.Cut(v, " ")
		if found && strings.EqualFold(scheme, "Bearer") && tok != "" {
			c.header = append(c.header, tok)
		}
	}
	if r.URL != nil && r.URL.RawQuery != "" {
		q, _ := url.ParseQuery(r.URL.RawQuery) // keeps what parses
		for _, v := range q[QueryToken] {
			if v != "" {
				c.query = append(c.query, v)
			}
		}
	}
	for _, ck := range r.CookiesNamed(CookiePrefix + id) {
		if ck.Value != "" {
			c.cookie = append(c.cookie, ck.Value)
		}
	}
	return c
}

// check reports whether any presented token is want, and whether the cookie
// already carries it.
func (c credentials) check(want string) (ok, viaQuery, viaCookie bool) {
	viaHeader := anyEqual(c.header, want)
	viaQuery = anyEqual(c.query, want)
	viaCookie = anyEqual(c.cookie, want)
	return viaHeader || viaQuery || viaCookie, viaQuery, viaCookie
}

// anyEqual compares every candidate with want in constant time; the hashes
// keep the length of want from showing.
func anyEqual(candidates []string, want string) bool {
	if want == "" {
		return false
	}
	w := sha256.Sum256([]byte(want))
	found := 0
	for _, c := range candidates {
		h := sha256.Sum256([]byte(c))
		found |= subtle.ConstantTimeCompare(h[:], w[:])
	}
	return found == 1
}

// stripBearer removes the Authorization lines that carry token as a
// bearer token and keeps the rest, which belong to the service behind.
func stripBearer(h http.Header, token string) {
	lines := h.Values("Authorization")
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, v := range lines {
		scheme, tok, found := strings.Cut(v, " ")
		if found && strings.EqualFold(scheme, "Bearer") && anyEqual([]string{tok}, token) {
			continue
		}
		kept = append(kept, v)
	}
	h.Del("Authorization")
	for _, v := range kept {
		h.Add("Authorization", v)
	}
}

// stripQueryToken removes every access_token parameter from a raw query and
// keeps the rest byte for byte, in its order.
func stripQueryToken(raw string) string {
	if raw == "" {
		return raw
	}
	parts := strings.Split(raw, "&")
	kept := parts[:0]
	for _, part := range parts {
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil && k == QueryToken {
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "&")
}

// stripTokenCookies removes every cubicle_token_* cookie from h, whichever
// sandbox it is for, so that no sandbox ever sees another's token.
func stripTokenCookies(h http.Header) {
	lines := h.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			if part == "" || strings.HasPrefix(strings.TrimSpace(name), CookiePrefix) {
				continue
			}
			kept = append(kept, part)
		}
	}
	if len(kept) == 0 {
		h.Del("Cookie")
		return
	}
	h.Set("Cookie", strings.Join(kept, "; "))
}

// tokenCookie is the cookie that lets a browser reach sandbox id after it
// opened a URL with ?access_token=.
func tokenCookie(id, token, path string, secure bool) *http.Cookie {
	return &http.Cookie{
		Name:     CookiePrefix + id,
		Value:    token,
		Path:     path,
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
}
