package api

import (
	"net/http"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

func (h *Handler) create(w http.ResponseWriter, r *http.Request, owner string) error {
	body := defaultCreateRequest()
	if err := h.decode(w, r, &body, true); err != nil {
		return err
	}
	req, err := toSandbox(body)
	if err != nil {
		return err
	}
	rec, err := h.m.Create(r.Context(), owner, req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/sandboxes/"+rec.ID)
	return writeJSON(w, http.StatusCreated, h.wire(r, rec, true))
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, owner string) error {
	q, err := ParseListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := h.m.List(r.Context(), owner, q)
	if err != nil {
		return err
	}
	out := apitype.ListResponse{Sandboxes: make([]apitype.Sandbox, len(page.Sandboxes)), Next: page.Next.String()}
	for i, rec := range page.Sandboxes {
		out.Sandboxes[i] = h.wire(r, rec, false)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, owner string) error {
	rec, err := h.m.Get(r.Context(), owner, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h.wire(r, rec, true))
}

func (h *Handler) kill(w http.ResponseWriter, r *http.Request, owner string) error {
	if err := h.m.Kill(r.Context(), owner, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) setTimeout(w http.ResponseWriter, r *http.Request, owner string) error {
	var body apitype.TimeoutRequest
	if err := h.decode(w, r, &body, false); err != nil {
		return err
	}
	if body.TimeoutS == nil {
		return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "timeout_s", Message: "timeout_s is required"}
	}
	d, err := seconds(*body.TimeoutS)
	if err != nil {
		return err
	}
	rec, err := h.m.SetTimeout(r.Context(), owner, r.PathValue("id"), d)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h.wire(r, rec, false))
}

func (h *Handler) setMetadata(w http.ResponseWriter, r *http.Request, owner string) error {
	var body apitype.MetadataRequest
	if err := h.decode(w, r, &body, false); err != nil {
		return err
	}
	if body.Metadata == nil {
		return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "metadata",
			Message: "metadata is required; send {\"metadata\": {}} to clear it"}
	}
	rec, err := h.m.SetMetadata(r.Context(), owner, r.PathValue("id"), body.Metadata)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h.wire(r, rec, false))
}

func (h *Handler) connect(w http.ResponseWriter, r *http.Request, owner string) error {
	var body apitype.ConnectRequest
	if err := h.decode(w, r, &body, true); err != nil {
		return err
	}
	var d time.Duration
	if body.TimeoutS != nil {
		var err error
		if d, err = seconds(*body.TimeoutS); err != nil {
			return err
		}
	}
	rec, err := h.m.Connect(r.Context(), owner, r.PathValue("id"), d)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h.wire(r, rec, true))
}

func (h *Handler) pause(w http.ResponseWriter, r *http.Request, owner string) error {
	if _, err := h.m.Pause(r.Context(), owner, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) setNetwork(w http.ResponseWriter, r *http.Request, owner string) error {
	body := apitype.Network{Internet: true}
	if err := h.decode(w, r, &body, false); err != nil {
		return err
	}
	p, err := toPolicy(body, "")
	if err != nil {
		return err
	}
	rec, err := h.m.SetNetwork(r.Context(), owner, r.PathValue("id"), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h.wire(r, rec, false))
}

func (h *Handler) metrics(w http.ResponseWriter, r *http.Request, owner string) error {
	st, err := h.m.Metrics(r.Context(), owner, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, metricsOf(st, time.Now()))
}
