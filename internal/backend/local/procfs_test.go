package local

import (
	"strings"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name, in string
		want     procStat
		ok       bool
	}{
		{"plain", "42 (cubicle) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 1 2 3", procStat{"cubicle", 'S', 777}, true},
		{"name with spaces and parens", "7 (a) b (c)) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 0", procStat{"a) b (c)", 'Z', 9}, true},
		{"truncated", "7 (x) S 1 2 3", procStat{}, false},
		{"no parens", "7 x S", procStat{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tc.in))
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("parseProcStat(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("42 (cubicle) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 1 2 3"))
	f.Add([]byte("1 ()) R"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseProcStat(data)
		if err == nil && !strings.Contains(string(data), "("+st.comm+")") {
			t.Errorf("comm %q is not in %q", st.comm, data)
		}
	})
}

func TestParseMountinfo(t *testing.T) {
	line := `35 31 0:32 / /sys/fs/cgroup/my\040memory rw,relatime shared:9 - cgroup cgroup rw,memory` + "\n"
	mnt, fstype, opts, ok := parseMountinfo(line)
	if !ok || mnt != "/sys/fs/cgroup/my memory" || fstype != "cgroup" || opts != "rw,memory" {
		t.Errorf("parseMountinfo = %q, %q, %q, %v", mnt, fstype, opts, ok)
	}
}

// TestPtraceChoice: the filter denies ptrace unless the backend allows it.
func TestPtraceChoice(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "denied", true: "allowed"}[allow], func(t *testing.T) {
			requireHost(t)
			cfg := testConfig(t)
			cfg.AllowPtrace = allow
			h := newHarnessWith(t, cfg)
			spec := h.spec(busyboxRootFS(t), "traceme")
			h.create(spec)
			want := map[bool]string{false: "operation not permitted", true: "<nil>"}[allow]
			if got := h.waitLog(spec.ID, "TRACEME"); got != want {
				t.Errorf("ptrace(PTRACE_TRACEME): %s, want %s", got, want)
			}
		})
	}
}
