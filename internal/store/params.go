package store

import (
	"net/netip"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// paramsJSON is the stored form of sandbox.Params (the spec column). It is
// spelled out here so that renaming a Go field cannot change what is on
// disk; add fields, never rename them.
type paramsJSON struct {
	Width    int            `json:"width"`
	Height   int            `json:"height"`
	DPI      int            `json:"dpi"`
	CPUs     float64        `json:"cpus,omitempty"`
	MemoryMB int            `json:"memory_mb,omitempty"`
	DiskMB   int            `json:"disk_mb,omitempty"`
	Pids     int            `json:"pids,omitempty"`
	Internet bool           `json:"internet"`
	AllowOut []netip.Prefix `json:"allow_out,omitempty"`
	DenyOut  []netip.Prefix `json:"deny_out,omitempty"`
	// PublicPorts is absent in rows written before it existed: those
	// sandboxes ask for the token on every port.
	PublicPorts bool `json:"public_ports,omitempty"`
	// DisplayMode is absent for the managed display (and in rows written
	// before it existed, when every stored sandbox read back as managed).
	DisplayMode string `json:"display_mode,omitempty"`
}

func toParamsJSON(p sandbox.Params) paramsJSON {
	return paramsJSON{
		Width: p.Width, Height: p.Height, DPI: p.DPI,
		CPUs: p.Limits.CPUs, MemoryMB: p.Limits.MemoryMB, DiskMB: p.Limits.DiskMB, Pids: p.Limits.Pids,
		Internet: p.Network.Internet, AllowOut: p.Network.AllowOut, DenyOut: p.Network.DenyOut,
		PublicPorts: p.PublicPorts, DisplayMode: string(p.DisplayMode),
	}
}

func (j paramsJSON) params() sandbox.Params {
	return sandbox.Params{
		Width: j.Width, Height: j.Height, DPI: j.DPI,
		Limits:      sandbox.Limits{CPUs: j.CPUs, MemoryMB: j.MemoryMB, DiskMB: j.DiskMB, Pids: j.Pids},
		Network:     sandbox.NetworkPolicy{Internet: j.Internet, AllowOut: j.AllowOut, DenyOut: j.DenyOut},
		PublicPorts: j.PublicPorts,
		DisplayMode: sandbox.DisplayMode(j.DisplayMode),
	}
}
