package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// state is what the backend records about a sandbox, in its state
// directory and in Instance.State: enough to adopt it or remove it after a
// restart.
type state struct {
	ID string `json:"id"`
	// Slot is k: the sandbox's host ids are HostBase to HostBase+65535,
	// HostBase = IDBase + k*65536.
	Slot     int            `json:"slot"`
	HostBase uint32         `json:"host_base"`
	Limits   sandbox.Limits `json:"limits"`
	// InitPID and InitStart are pid 1 of the sandbox as the host sees it
	// and its start time; zero until the init runs.
	InitPID   int    `json:"init_pid,omitempty"`
	InitStart uint64 `json:"init_start,omitempty"`
}

// Files in a sandbox's state directory.
const (
	stateFile = "state.json"
	imageFile = "upper.img"
	logFile   = "init.log"
	// stagingDir is where the init assembles the root filesystem, in its
	// own mount namespace; on the host it stays an empty directory.
	stagingDir = "mnt"
)

// validID reports whether id is 20 characters of [a-z0-9], the only ids
// the backend accepts (they become file and cgroup names).
func validID(id string) bool {
	if len(id) != 20 {
		return false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func (b *Backend) dir(id string) string { return filepath.Join(b.cfg.StateDir, id) }

// writeState records st in its state directory, atomically.
func (b *Backend) writeState(st *state) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(b.dir(st.ID), stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(b.dir(st.ID), stateFile))
}

// readState reads the state recorded for id; fs.ErrNotExist when there is
// none.
func (b *Backend) readState(id string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(b.dir(id), stateFile))
	if err != nil {
		return nil, err
	}
	return decodeState(data)
}

func decodeState(data []byte) (*state, error) {
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("decode state: %w: %w", desktop.ErrInvalid, err)
	}
	if !validID(st.ID) {
		return nil, fmt.Errorf("decode state: %w: bad id %q", desktop.ErrInvalid, st.ID)
	}
	return &st, nil
}

// stateIDs returns the ids that have a state directory.
func (b *Backend) stateIDs() ([]string, error) {
	entries, err := os.ReadDir(b.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && validID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// loadSlots marks the id ranges of every sandbox with a state directory as
// taken, so a new sandbox never shares ids with one a previous run left.
func (b *Backend) loadSlots() error {
	ids, err := b.stateIDs()
	if err != nil {
		return err
	}
	for _, id := range ids {
		st, err := b.readState(id)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			b.log.Warn("unreadable sandbox state", "sandbox_id", id, "error", err)
			continue
		}
		if st.Slot >= 0 && st.Slot < b.cfg.IDRanges && b.hostBase(st.Slot) == st.HostBase {
			b.slots[st.Slot] = id
		}
	}
	return nil
}

func (b *Backend) hostBase(slot int) uint32 {
	return b.cfg.IDBase + uint32(slot)*IDRangeSize
}

// allocSlot takes the lowest free id range for id. b.mu must be held.
func (b *Backend) allocSlot(id string) (int, error) {
	for k := 0; k < b.cfg.IDRanges; k++ {
		if _, taken := b.slots[k]; !taken {
			b.slots[k] = id
			return k, nil
		}
	}
	return 0, fmt.Errorf("all %d id ranges are taken: %w", b.cfg.IDRanges, desktop.ErrUnavailable)
}

// freeSlot returns id's range. b.mu must be held.
func (b *Backend) freeSlot(id string) {
	for k, owner := range b.slots {
		if owner == id {
			delete(b.slots, k)
		}
	}
}

// validateSpec checks what the sandbox is made of before anything is made.
func validateSpec(spec sandbox.Spec, lim sandbox.Limits) error {
	var errs []error
	if !validID(spec.ID) {
		errs = append(errs, fmt.Errorf("id %q is not 20 characters of [a-z0-9]", spec.ID))
	}
	if st, err := os.Stat(spec.RootFS); !filepath.IsAbs(spec.RootFS) || err != nil || !st.IsDir() {
		errs = append(errs, fmt.Errorf("root filesystem %q is not an absolute path to a directory", spec.RootFS))
	}
	if st, err := os.Stat(spec.Agent); !filepath.IsAbs(spec.Agent) || err != nil || !st.Mode().IsRegular() || st.Mode()&0o001 == 0 {
		errs = append(errs, fmt.Errorf("agent %q is not an absolute path to a file others may execute", spec.Agent))
	}
	if len(spec.Hostname) > 64 || strings.ContainsAny(spec.Hostname, "/\x00 ") {
		errs = append(errs, fmt.Errorf("hostname %q is not valid", spec.Hostname))
	}
	for _, kv := range append(append([]string(nil), spec.Env...), spec.AgentArgs...) {
		if strings.ContainsRune(kv, 0) {
			errs = append(errs, errors.New("environment or arguments contain a NUL byte"))
			break
		}
	}
	for _, kv := range spec.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			errs = append(errs, fmt.Errorf("environment entry %q is not KEY=value", kv))
		}
	}
	if err := validLimits(lim); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", desktop.ErrInvalid, err)
	}
	return nil
}
