package e2bapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// create serves POST /v2/sandboxes. It answers once the agent in the
// sandbox (envd) answers, so the SDK's first command finds it.
func (h *Handler) create(w http.ResponseWriter, r *http.Request, owner string) error {
	var body NewSandbox
	if err := h.decode(w, r, &body, false); err != nil {
		return err
	}
	req, err := h.toCreateRequest(body)
	if err != nil {
		return err
	}
	rec, err := h.m.Create(r.Context(), owner, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, h.sandbox(rec))
}

// live returns owner's sandbox id, and not found once it was killed.
func (h *Handler) live(r *http.Request, owner string) (sandbox.Record, error) {
	rec, err := h.m.Get(r.Context(), owner, r.PathValue("id"))
	if err != nil {
		return sandbox.Record{}, err
	}
	if rec.State == sandbox.StateKilled {
		return sandbox.Record{}, killed(rec)
	}
	return rec, nil
}

// connect serves POST /v2/sandboxes/{id}/connect: 200 when the sandbox
// was running, 201 when it was paused and is resumed.
func (h *Handler) connect(w http.ResponseWriter, r *http.Request, owner string) error {
	var body ConnectRequest
	if err := h.decode(w, r, &body, true); err != nil {
		return err
	}
	var d time.Duration
	if body.Timeout != nil {
		var err error
		if d, err = seconds("timeout", *body.Timeout); err != nil {
			return err
		}
	}
	before, err := h.live(r, owner)
	if err != nil {
		return err
	}
	rec, err := h.m.Connect(r.Context(), owner, before.ID, d)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if before.State == sandbox.StatePaused {
		status = http.StatusCreated
	}
	return writeJSON(w, status, h.sandbox(rec))
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, owner string) error {
	rec, err := h.live(r, owner)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h.detail(rec))
}

func (h *Handler) kill(w http.ResponseWriter, r *http.Request, owner string) error {
	if err := h.m.Kill(r.Context(), owner, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) setTimeout(w http.ResponseWriter, r *http.Request, owner string) error {
	var body TimeoutRequest
	if err := h.decode(w, r, &body, false); err != nil {
		return err
	}
	if body.Timeout == nil {
		return badRequest("timeout (in seconds) is required")
	}
	d, err := seconds("timeout", *body.Timeout)
	if err != nil {
		return err
	}
	if _, err := h.m.SetTimeout(r.Context(), owner, r.PathValue("id"), d); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// metrics serves GET /sandboxes/{id}/metrics: one sample, taken now. The
// optional start and end (unix seconds) must be whole numbers.
func (h *Handler) metrics(w http.ResponseWriter, r *http.Request, owner string) error {
	for _, name := range []string{"start", "end"} {
		if s := r.URL.Query().Get(name); s != "" {
			if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				return badRequest("%s %.32q is not a time in unix seconds", name, s)
			}
		}
	}
	st, err := h.m.Metrics(r.Context(), owner, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, []Metric{metric(st, time.Now())})
}

// pause serves POST /sandboxes/{id}/pause: 204, or 409 when the sandbox
// is paused already.
func (h *Handler) pause(w http.ResponseWriter, r *http.Request, owner string) error {
	var body struct {
		Memory *bool `json:"memory,omitempty"`
	}
	if err := h.decode(w, r, &body, true); err != nil {
		return err
	}
	if _, err := h.m.Pause(r.Context(), owner, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// resume serves POST /sandboxes/{id}/resume: 201 with the sandbox, or 409
// when it is not paused.
func (h *Handler) resume(w http.ResponseWriter, r *http.Request, owner string) error {
	var body ResumeRequest
	if err := h.decode(w, r, &body, true); err != nil {
		return err
	}
	if body.AutoPause != nil && *body.AutoPause {
		return badRequest("autoPause is not supported: sandboxes are killed at their timeout")
	}
	var d time.Duration
	if body.Timeout != nil {
		var err error
		if d, err = seconds("timeout", *body.Timeout); err != nil {
			return err
		}
	}
	id := r.PathValue("id")
	rec, err := h.m.Resume(r.Context(), owner, id)
	if err != nil {
		return err
	}
	if d > 0 {
		if rec, err = h.m.SetTimeout(r.Context(), owner, id, d); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusCreated, h.sandbox(rec))
}

// setNetwork serves PUT /sandboxes/{id}/network: the lists and the
// internet switch that the body has replace the sandbox's, live.
func (h *Handler) setNetwork(w http.ResponseWriter, r *http.Request, owner string) error {
	var body NetworkUpdate
	if err := h.decode(w, r, &body, false); err != nil {
		return err
	}
	rec, err := h.live(r, owner)
	if err != nil {
		return err
	}
	p := rec.Params.Network
	if body.AllowOut != nil {
		if p.AllowOut, err = prefixes("allowOut", *body.AllowOut); err != nil {
			return err
		}
	}
	if body.DenyOut != nil {
		if p.DenyOut, err = prefixes("denyOut", *body.DenyOut); err != nil {
			return err
		}
	}
	if body.AllowInternetAccess != nil {
		p.Internet = *body.AllowInternetAccess
	}
	if _, err := h.m.SetNetwork(r.Context(), owner, rec.ID, p); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
