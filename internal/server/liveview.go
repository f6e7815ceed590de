package server

import (
	"fmt"
	"slices"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
	"github.com/cubicle-dev/cubicle/internal/stream"
	"github.com/cubicle-dev/cubicle/internal/web"
)

// wireLiveView makes the live view over m and mounts it with the
// dashboard: the stream URL routes of the native API, the view pages and
// their WebSocket under /view/, and the dashboard at / and /ui/.
func (s *Server) wireLiveView(m *sandbox.Manager) error {
	svc, err := stream.New(stream.Config{
		StateDir:    s.cfg.StateDir,
		TTL:         s.cfg.StreamTTL,
		NoVNCDir:    s.cfg.NoVNCDir,
		PublicURL:   s.cfg.PublicURL,
		DialContext: s.cfg.DialContext,
		Logger:      s.log.With("component", "stream"),
	}, m, s.keys)
	if err != nil {
		return fmt.Errorf("server: live view: %w", err)
	}
	s.stream = svc
	api := svc.APIHandler()
	s.cfg.Mounts = slices.Clip(s.cfg.Mounts) // append to a copy, not the caller's array
	for _, p := range stream.Patterns() {
		s.cfg.Mounts = append(s.cfg.Mounts, Mount{p, api})
	}
	s.cfg.Mounts = append(s.cfg.Mounts, Mount{"/view/", svc.ViewHandler()})
	dash := web.Handler()
	for _, p := range web.Patterns() {
		s.cfg.Mounts = append(s.cfg.Mounts, Mount{p, dash})
	}
	return nil
}
