package envd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// initRequest is the body of POST /init. The runtime sets the token, the
// sandbox environment and the default user itself; /init may add
// variables and change the default user and working directory.
type initRequest struct {
	EnvVars        map[string]string `json:"envVars"`
	AccessToken    *string           `json:"accessToken"`
	DefaultUser    *string           `json:"defaultUser"`
	DefaultWorkdir *string           `json:"defaultWorkdir"`
	Timestamp      *time.Time        `json:"timestamp"`
}

func (s *Service) handleInit(w http.ResponseWriter, r *http.Request) {
	var req initRequest
	if r.ContentLength != 0 {
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		if err := dec.Decode(&req); err != nil && err != io.EOF {
			writeHTTPError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
			return
		}
	}
	if req.AccessToken != nil && *req.AccessToken != s.cfg.Token {
		writeHTTPError(w, http.StatusConflict, "the access token is fixed when the sandbox starts and cannot be changed")
		return
	}
	for k, v := range req.EnvVars {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			writeHTTPError(w, http.StatusBadRequest, fmt.Sprintf("invalid environment variable %q", k))
			return
		}
	}
	if req.DefaultUser != nil && *req.DefaultUser != "" {
		if _, err := s.cfg.Lookup(*req.DefaultUser); err != nil {
			writeHTTPError(w, http.StatusBadRequest, fmt.Sprintf("unknown default user %q", *req.DefaultUser))
			return
		}
	}
	s.mu.Lock()
	for k, v := range req.EnvVars {
		s.extraEnv[k] = v
	}
	if req.DefaultUser != nil {
		s.defaultUsr = *req.DefaultUser
	}
	if req.DefaultWorkdir != nil {
		s.defaultDir = *req.DefaultWorkdir
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleEnvs(w http.ResponseWriter, r *http.Request) {
	out := map[string]string{}
	for _, kv := range s.env() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// metrics is the body of GET /metrics.
type metrics struct {
	Timestamp   int64   `json:"ts"`
	CPUCount    int     `json:"cpu_count"`
	CPUUsedPct  float64 `json:"cpu_used_pct"`
	MemTotal    uint64  `json:"mem_total"`
	MemUsed     uint64  `json:"mem_used"`
	MemCache    uint64  `json:"mem_cache"`
	MemTotalMiB uint64  `json:"mem_total_mib"`
	MemUsedMiB  uint64  `json:"mem_used_mib"`
	DiskUsed    uint64  `json:"disk_used"`
	DiskTotal   uint64  `json:"disk_total"`
}

func (s *Service) handleMetrics(w http.ResponseWriter, r *http.Request) {
	m := metrics{Timestamp: time.Now().Unix(), CPUCount: runtime.NumCPU()}
	if busy1, total1, err := cpuTimes(); err == nil {
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		if busy2, total2, err := cpuTimes(); err == nil && total2 > total1 {
			m.CPUUsedPct = float64(int(10000*float64(busy2-busy1)/float64(total2-total1))) / 100
		}
	}
	if mem, err := memInfo(); err == nil {
		m.MemTotal = mem["MemTotal"]
		m.MemCache = mem["Cached"] + mem["Buffers"]
		if avail, ok := mem["MemAvailable"]; ok && avail <= m.MemTotal {
			m.MemUsed = m.MemTotal - avail
		}
		m.MemTotalMiB, m.MemUsedMiB = m.MemTotal>>20, m.MemUsed>>20
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err == nil {
		bs := uint64(st.Bsize)
		m.DiskTotal = st.Blocks * bs
		m.DiskUsed = (st.Blocks - st.Bfree) * bs
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(m)
}

// cpuTimes reads the busy and total jiffies of all CPUs from /proc/stat.
func cpuTimes() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("envd: unexpected /proc/stat")
	}
	for i, f := range fields[1:] {
		n, _ := strconv.ParseUint(f, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// memInfo reads /proc/meminfo in bytes.
func memInfo() (map[string]uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n <<= 10
		}
		out[k] = n
	}
	return out, sc.Err()
}
