package proxy

import (
	"net/http"
	"net/url"
)

// FilesPath is the agent's file transfer endpoint, which E2B's SDK hands
// out as signed URLs (downloadUrl, uploadUrl).
const FilesPath = "/files"

// signedFiles reports whether r is a request for the agent's /files with a
// signature: GET or HEAD (a download) or POST (an upload) with a
// non-empty signature query parameter. Such a request may come without the
// access token: the agent checks the signature against it, and answers
// 401 when it does not match, has expired, or is for another path or
// operation. The proxy only lets it through to the agent without the
// token; everything else on the agent still asks for the token.
func signedFiles(r *http.Request, rt route) bool {
	if rt.port != AgentPort || r.URL == nil {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		return false
	}
	path := r.URL.Path
	if rt.rewrite {
		path = rt.path
	}
	if path != FilesPath {
		return false
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	return err == nil && q.Get("signature") != ""
}
