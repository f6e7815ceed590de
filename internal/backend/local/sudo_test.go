package local

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestSudo: on a Debian root filesystem, uid 1000 becomes root inside
// with sudo (no_new_privs stays off for that), and that root is the
// sandbox's: an unprivileged host id that cannot open a host file.
func TestSudo(t *testing.T) {
	h := newHarness(t)
	spec := h.spec(minbaseRootFS(t), "sudo")
	inst := h.create(spec)
	if got := h.waitLog(spec.ID, "ROOT-ID"); !strings.HasPrefix(got, "0 ") {
		t.Errorf("id -u as the sandbox's root: %q", got)
	}
	line := h.waitLog(spec.ID, "SUDO-CHILD")
	var res map[string]string
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("%v in %q", err, line)
	}
	if res["uid"] != "0" || res["euid"] != "0" {
		t.Fatalf("sudo from uid 1000 gave uid %s euid %s, want 0", res["uid"], res["euid"])
	}
	if res["shadow"] != "ok" {
		t.Errorf("root through sudo cannot open the sandbox's /etc/shadow: %s", res["shadow"])
	}
	if !strings.Contains(res["host file"], "permission denied") {
		t.Errorf("root through sudo reopening a host file: %s, want permission denied", res["host file"])
	}
	if !strings.Contains(res["mount"], "operation not permitted") {
		t.Errorf("root through sudo mounting: %s, want operation not permitted", res["mount"])
	}

	// From the host: every process of the sandbox runs with ids of its
	// range, and the sudo child, root inside, is the range's first id.
	hb := hostBaseOf(t, inst)
	pids, err := h.b.h.groups(h.cfg.CgroupRoot, spec.ID).pids()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, pid := range pids {
		uids := strings.Fields(procStatus(t, pid, "Uid"))
		for _, u := range uids {
			n, _ := strconv.ParseUint(u, 10, 32)
			if uint32(n) < hb || uint64(n) >= uint64(hb)+IDRangeSize {
				t.Errorf("host pid %d runs as host uid %d, outside the sandbox's range [%d, %d)", pid, n, hb, uint64(hb)+IDRangeSize)
			}
		}
		nspid := strings.Fields(procStatus(t, pid, "NSpid"))
		if nspid[len(nspid)-1] == res["pid"] {
			found = true
			if want := fmt.Sprint(hb); uids[1] != want {
				t.Errorf("the sudo child runs as host euid %s, want %s", uids[1], want)
			}
		}
	}
	if !found {
		t.Errorf("sudo child (pid %s inside) not found among the sandbox's processes %v", res["pid"], pids)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(inst.InitPID)); err != nil {
		t.Errorf("the sandbox's pid 1 is gone: %v", err)
	}
}
