package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
)

// TestIsolation runs the isolation checks against sandboxes made through
// a real `cubicle serve`: posture, resource limits, network tampering,
// cross-sandbox reach, tokens, the file API and known escapes. A runs with
// small CPU, memory and disk limits; B keeps the defaults.
func TestIsolation(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("cubicle serve needs root")
	}
	// Sandbox traffic goes to the test's own internet, never further.
	world := newInternet(t)
	srv, state := serveForTest(t, "--uplink", world.veth)
	parent := t
	if srv.key == "" {
		t.Fatal("the first start printed no API key")
	}
	ctx := context.Background()
	c, err := client.New(srv.url, srv.key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const memA, diskA, cpusA = 768, 128, 1
	a, err := c.Create(ctx, client.CreateOptions{Timeout: 10 * time.Minute,
		Limits: &client.Limits{CPUs: cpusA, MemoryMB: memA, DiskMB: diskA}})
	if err != nil {
		t.Fatalf("create A: %v", err)
	}
	defer c.Kill(ctx, a.ID())
	b, err := c.Create(ctx, client.CreateOptions{Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatalf("create B: %v", err)
	}
	defer c.Kill(ctx, b.ID())
	boxes := []struct {
		name string
		sbx  *client.Sandbox
	}{{"A", a}, {"B", b}}
	pidNS, logs := map[string]string{}, map[string]func() string{}
	for _, x := range boxes {
		pidNS[x.sbx.ID()] = pidNamespace(t, x.sbx.ID())
		logs[x.sbx.ID()] = initLog(t, state, x.sbx.ID())
	}

	// Markers on the host that nothing inside a sandbox may read.
	word := randomWord(t)
	secret := "host secret " + word
	hostSecrets := []string{filepath.Join("/tmp", "host-secret-"+word), filepath.Join(state, "host-secret-"+word)}
	for _, p := range hostSecrets {
		if err := os.WriteFile(p, []byte(secret), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
	}
	hostProc := exec.Command("/bin/sleep", "600")
	hostProc.Args[0] = "host-marker-" + word
	hostProc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := hostProc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { hostProc.Process.Kill(); hostProc.Wait() }()

	t.Run("posture", func(t *testing.T) {
		for _, x := range boxes {
			for _, user := range []string{"", "root"} {
				if out := mustInside(t, x.sbx, user, "grep ^Seccomp: /proc/self/status"); strings.Join(strings.Fields(out), " ") != "Seccomp: 2" {
					t.Errorf("%s as %q: %q, want Seccomp 2", x.name, user, out)
				}
				if out := mustInside(t, x.sbx, user, "cat /proc/self/uid_map"); strings.Join(strings.Fields(out), " ") == "0 0 4294967295" {
					t.Errorf("%s as %q: uid_map is the host's: %q", x.name, user, out)
				}
			}
			procs := mustInside(t, x.sbx, "root", `ls /proc | grep -c '^[0-9]'; cat /proc/1/comm; cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' '`)
			if strings.Contains(procs, "host-marker-"+word) {
				t.Errorf("%s sees a host process", x.name)
			}
			if f := strings.Fields(procs); len(f) < 2 || f[1] != "cubicle" {
				t.Errorf("%s: pid 1 is %q, want the agent (cubicle)", x.name, procs)
			}
			if out := mustInside(t, x.sbx, "root", `for f in /dev/kvm /dev/fuse /dev/net/tun /dev/vda /dev/sda /dev/mem /dev/kmem /dev/kmsg /proc/kcore /work /var/lib/cubicle; do [ -e $f ] && echo $f; done; true`); out != "" {
				t.Errorf("%s has host devices or paths: %q", x.name, out)
			}
		}
		denied := []struct{ name, script string }{
			{"write a sysctl", "cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname"},
			{"write /sys", "echo 1 > /sys/kernel/mm/ksm/run"},
			{"nested user namespace", "unshare -U true"},
			{"mount", "mount -t tmpfs x /mnt"},
			{"kernel log", "dmesg"},
		}
		for _, d := range denied {
			if out, ok := inside(t, a, "root", d.script); ok {
				t.Errorf("root in A could %s (%q): %s", d.name, d.script, out)
			}
		}
		self := map[string]string{}
		for _, ns := range []string{"pid", "mnt", "net", "uts", "ipc", "cgroup", "user"} {
			l, err := os.Readlink("/proc/self/ns/" + ns)
			if err != nil {
				t.Fatal(err)
			}
			self[ns] = l
		}
		for _, x := range boxes {
			pid := sandboxInit(t, x.sbx.ID())
			for ns, host := range self {
				l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
				if err != nil || l == host {
					t.Errorf("%s's init (pid %d) %s namespace %q %v, host %q", x.name, pid, ns, l, err, host)
				}
			}
			if r, m := hostIDRange(t, pid); r.base == 0 {
				t.Errorf("%s's init maps to host root: uid_map %q", x.name, m)
			}
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if !regexp.MustCompile(`(?m)^Seccomp:\s+2$`).Match(st) {
				t.Errorf("%s's init is not under a seccomp filter", x.name)
			}
		}
	})

	t.Run("idle memory", func(t *testing.T) {
		// ISOLATION.md: anonymous memory of an idle desktop at most 300 MiB.
		for _, x := range boxes {
			rss, err := readCgroupField(cgroupFile(x.sbx.ID(), "memory", "memory.stat"), "total_rss")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: idle desktop anonymous memory %d MiB", x.name, rss>>20)
			if rss > 300<<20 {
				t.Errorf("%s: idle desktop uses %d MiB of anonymous memory, want at most 300", x.name, rss>>20)
			}
		}
	})

	t.Run("cpu quota", func(t *testing.T) { cpuQuota(t, a) })
	t.Run("cpu shares", func(t *testing.T) { cpuShares(t, a, b) })

	t.Run("egress", func(t *testing.T) { egress(t, c, world, state) })

	t.Run("fork bomb", func(t *testing.T) {
		// Its own sandbox, so that A and B stay fit for what follows.
		bomb, err := c.Create(ctx, client.CreateOptions{Timeout: 5 * time.Minute})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		ns := pidNamespace(t, bomb.ID())
		log := initLog(t, state, bomb.ID())
		defer func() {
			if err := c.Kill(ctx, bomb.ID()); err != nil {
				t.Errorf("kill the bombed sandbox: %v", err)
			}
			waitFor(t, "the bombed sandbox's leftovers to go", time.Minute, func() (bool, string) {
				l := append(leftovers(bomb.ID()), processesInNamespace(ns)...)
				return len(l) == 0, fmt.Sprint(l)
			})
		}()
		forkBomb(t, bomb, a, log)
	})
	t.Run("memory hog", func(t *testing.T) { memoryHog(t, a, b, memA) })

	t.Run("disk quota", func(t *testing.T) {
		out, ok := inside(t, a, "", fmt.Sprintf("dd if=/dev/zero of=/home/user/fill bs=1M count=%d", 2*diskA))
		if ok || !strings.Contains(out, "No space left on device") {
			t.Errorf("writing twice the disk limit: ok %v, output %q, want No space left on device", ok, out)
		}
		mustInside(t, a, "", "rm -f /home/user/fill; echo after > /home/user/after && cat /home/user/after")
	})

	t.Run("network tamper", func(t *testing.T) {
		const look = "ip -4 -o addr show; ip route; ip -o link show"
		before := mustInside(t, a, "root", look)
		for _, script := range []string{
			"ip link set eth0 down",
			"ip addr add 10.200.0.9/32 dev eth0",
			"ip route del default",
			"ip link add cbdummy type dummy",
			"sudo ip link set eth0 down",
		} {
			out, ok := inside(t, a, "root", script)
			if ok || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("root in A: %q: ok %v, output %q, want Operation not permitted", script, ok, out)
			}
		}
		if after := mustInside(t, a, "root", look); after != before {
			t.Errorf("the network changed:\nbefore %s\nafter %s", before, after)
		}
	})

	t.Run("cross-sandbox", func(t *testing.T) { crossSandbox(t, a, b, word) })
	t.Run("access tokens", func(t *testing.T) { accessTokens(t, srv.url, a, b) })
	t.Run("file API escape", func(t *testing.T) { fileEscape(t, a, hostSecrets, secret) })
	t.Run("escape regressions", func(t *testing.T) { escapes(t, a, hostSecrets) })

	t.Run("teardown", func(t *testing.T) {
		if parent.Failed() {
			for _, x := range boxes {
				t.Logf("%s's init log:\n%s", x.name, logs[x.sbx.ID()]())
			}
		}
		for _, x := range boxes {
			if err := c.Kill(ctx, x.sbx.ID()); err != nil {
				t.Fatalf("kill %s: %v", x.name, err)
			}
		}
		for _, x := range boxes {
			id, ns := x.sbx.ID(), pidNS[x.sbx.ID()]
			waitFor(t, x.name+"'s leftovers to go", time.Minute, func() (bool, string) {
				l := append(leftovers(id), processesInNamespace(ns)...)
				return len(l) == 0, fmt.Sprint(l)
			})
		}
	})
}

// cpuQuota runs two busy loops for 3 s in sbx, whose quota is one CPU on
// a host with two or more, and checks that they got no more than the
// quota (plus 10 %), and that the kernel throttled them when they reached
// it.
func cpuQuota(t *testing.T, sbx *client.Sandbox) {
	id := sbx.ID()
	throttled := func() int64 {
		n, err := readCgroupField(cgroupFile(id, "cpu", "cpu.stat"), "nr_throttled")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := throttled()
	wall, cpu, err := busyLoops(sbx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("two busy loops: %.2f s of CPU in %.2f s", cpu, wall)
	if cpu > 1.1*wall {
		t.Errorf("two busy loops used %.2f s of CPU in %.2f s, over the quota of 1 CPU (+10%%)", cpu, wall)
	}
	// When the loops got about all the quota allows (a busy host may give
	// them less), the kernel must have throttled them to hold it.
	if after := throttled(); cpu > 0.9*wall && after <= before {
		t.Errorf("cpu.stat nr_throttled %d -> %d: the loops ran at the quota and were never held back", before, after)
	}
}

// cpuShares runs two busy loops in each of small (1 CPU) and big (2 CPUs)
// at the same time, four loops on the host's cores: the CPU time they get
// must follow their shares, 1024 to 2048, within 30 %.
func cpuShares(t *testing.T, small, big *client.Sandbox) {
	if runtime.NumCPU() > 2 {
		// With more cores than loops there is no contention to share.
		t.Skipf("%d cores: four loops do not contend", runtime.NumCPU())
	}
	type got struct{ wall, cpu float64 }
	res := make([]got, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, sbx := range []*client.Sandbox{small, big} {
		wg.Go(func() {
			res[i].wall, res[i].cpu, errs[i] = busyLoops(sbx)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	ratio := res[1].cpu / res[0].cpu
	t.Logf("under contention: 1-CPU sandbox %.2f s of CPU in %.2f s, 2-CPU sandbox %.2f s in %.2f s, ratio %.2f",
		res[0].cpu, res[0].wall, res[1].cpu, res[1].wall, ratio)
	if ratio < 2*0.7 || ratio > 2*1.3 {
		t.Errorf("CPU time of the 2-CPU sandbox over the 1-CPU one's = %.2f, want 2 ± 30%% (cpu.shares 2048 : 1024)", ratio)
	}
}

// busyLoops runs two busy loops for 3 s in sbx and returns the wall time
// and the CPU time they used, as bash's time reports them.
func busyLoops(sbx *client.Sandbox) (wall, cpu float64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const script = `TIMEFORMAT='%R %U %S'; { time { for i in 1 2; do timeout 3 sh -c 'while :; do :; done' & done; wait; } ; } 2>&1`
	res, err := sbx.Commands.Run(ctx, script, client.CommandOptions{Timeout: 90 * time.Second})
	if err != nil {
		return 0, 0, fmt.Errorf("busy loops in %s: %w", sbx.ID(), err)
	}
	f := strings.Fields(res.Stdout)
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("busy loops in %s: time printed %q", sbx.ID(), res.Stdout)
	}
	var user, sys float64
	for i, p := range []*float64{&wall, &user, &sys} {
		if *p, err = strconv.ParseFloat(f[i], 64); err != nil {
			return 0, 0, fmt.Errorf("busy loops in %s: time printed %q: %w", sbx.ID(), res.Stdout, err)
		}
	}
	return wall, user + sys, nil
}

// forkBomb runs a fork bomb in bomb for 5 s and checks that the pids
// limit held it, that bomb and other still work and the host still forks.
func forkBomb(t *testing.T, bomb, other *client.Sandbox, log func() string) {
	id := bomb.ID()
	limit, err := readCgroupInt(cgroupFile(id, "pids", "pids.max"))
	if err != nil {
		t.Fatal(err)
	}
	// The bomb stops itself after 5 s (printf's %T is a builtin: no fork
	// needed to read the clock); bash gives up a failing fork after ~15 s.
	mustInside(t, bomb, "", "rm -f /tmp/bomb-wait; mkfifo /tmp/bomb-wait")
	script := `end=$(( $(date +%s) + 5 ))
f() { local now; printf -v now '%(%s)T' -1; (( now >= end )) && exit 0; f | f & }
f >/dev/null 2>&1
read -t 7 <>/tmp/bomb-wait
exit 0`
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := bomb.Commands.Run(ctx, script, client.CommandOptions{Timeout: 60 * time.Second})
		done <- err
	}()
	var peak int64
	hostForks := 0
	for running := true; running; {
		select {
		case err := <-done:
			running = false
			var exit *client.CommandExitError
			if err != nil && !errors.As(err, &exit) {
				t.Errorf("the bomb's command: %v", err)
			}
		case <-time.After(200 * time.Millisecond):
			if n, err := readCgroupInt(cgroupFile(id, "pids", "pids.current")); err == nil {
				peak = max(peak, n)
			}
			if err := exec.Command("true").Run(); err != nil {
				t.Errorf("the host cannot fork during the bomb: %v", err)
			}
			hostForks++
		}
	}
	hit, err := readCgroupField(cgroupFile(id, "pids", "pids.events"), "max")
	t.Logf("pids.max %d, peak pids.current %d, pids.events max %d (%v), host forks during the bomb %d", limit, peak, hit, err, hostForks)
	if err != nil || hit == 0 {
		t.Errorf("pids.events max = %d %v: the bomb never reached the limit", hit, err)
	}
	if peak > limit {
		t.Errorf("pids.current peaked at %d over pids.max %d", peak, limit)
	}
	waitFor(t, "the bomb to die out", 90*time.Second, func() (bool, string) {
		n, err := readCgroupInt(cgroupFile(id, "pids", "pids.current"))
		return err == nil && n < limit/2, fmt.Sprint(n, err)
	})
	if err := bomb.Health(context.Background()); err != nil {
		t.Fatalf("the bombed sandbox did not survive: %v\ninit log:\n%s", err, log())
	}
	if out := mustInside(t, bomb, "", "echo alive"); out != "alive\n" {
		t.Errorf("after the bomb: %q", out)
	}
	if _, err := bomb.Screenshot(context.Background()); err != nil {
		t.Errorf("the bombed desktop: %v", err)
	}
	if out := mustInside(t, other, "", "echo alive"); out != "alive\n" {
		t.Errorf("the other sandbox after the bomb: %q", out)
	}
}

// memoryHog allocates four times hog's memory limit and checks that only
// the hog was OOM-killed and both sandboxes still work.
func memoryHog(t *testing.T, hog, other *client.Sandbox, limitMB int) {
	id := hog.ID()
	before, _ := readCgroupField(cgroupFile(id, "memory", "memory.oom_control"), "oom_kill")
	// tail keeps a line that never ends: it grows until it is killed.
	out, ok := inside(t, hog, "", fmt.Sprintf("head -c %dM /dev/zero | tail", 4*limitMB))
	if ok {
		t.Errorf("allocating 4x the limit succeeded: %q", out)
	}
	after, err := readCgroupField(cgroupFile(id, "memory", "memory.oom_control"), "oom_kill")
	if err != nil || after <= before {
		t.Errorf("memory.oom_control oom_kill %d -> %d (%v), want an OOM kill in the sandbox's cgroup", before, after, err)
	}
	if err := hog.Health(context.Background()); err != nil {
		t.Errorf("the agent after the OOM kill: %v", err)
	}
	if out := mustInside(t, hog, "", "echo alive"); out != "alive\n" {
		t.Errorf("after the OOM kill: %q", out)
	}
	waitFor(t, "the OOM-hit desktop to answer", time.Minute, func() (bool, string) {
		_, err := hog.Screenshot(context.Background())
		return err == nil, fmt.Sprint(err)
	})
	if out := mustInside(t, other, "", "echo alive"); out != "alive\n" {
		t.Errorf("the other sandbox: %q", out)
	}
}

// crossSandbox checks that a sees nothing of b: network, processes,
// shared memory, SysV IPC and X display.
func crossSandbox(t *testing.T, a, b *client.Sandbox, word string) {
	idA, idB := mustInside(t, a, "", "cat /etc/machine-id"), mustInside(t, b, "", "cat /etc/machine-id")
	if !regexp.MustCompile(`^[0-9a-f]{32}\n$`).MatchString(idA) || idA == idB {
		t.Errorf("machine-id of A %q and of B %q: want two different ids of 32 hex digits", idA, idB)
	}
	m := regexp.MustCompile(`inet (\d+\.\d+\.\d+\.\d+)`).FindStringSubmatch(mustInside(t, b, "", "ip -4 -o addr show eth0"))
	if m == nil {
		t.Fatal("B has no IPv4 address on eth0")
	}
	bIP := m[1]
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(bIP, "49983"), 3*time.Second); err == nil {
		conn.Close()
		t.Logf("the host reaches B's agent at %s:49983 directly", bIP)
	} else {
		t.Logf("the host does not reach B's agent at %s:49983 directly: %v", bIP, err)
	}
	if err := b.Health(context.Background()); err != nil {
		t.Fatalf("B's agent through the proxy: %v", err)
	}
	for _, port := range []string{"49983", "5900", "6080"} {
		out, ok := inside(t, a, "", fmt.Sprintf("curl -sS -m 3 -o /dev/null -w '%%{http_code}' http://%s:%s/health", bIP, port))
		if ok {
			t.Errorf("A reached B at %s:%s: %q", bIP, port, out)
		}
		t.Logf("A -> %s:%s: %q", bIP, port, out)
	}

	h, err := b.Commands.Start(context.Background(), "exec -a b-marker-"+word+" sleep 300")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Kill(context.Background())
	made := mustInside(t, b, "", "echo b > /dev/shm/b-shm-"+word+"; echo b > /home/user/b-file-"+word+"; ipcmk -M 4096 -p 0666")
	shmid := regexp.MustCompile(`id: (\d+)`).FindStringSubmatch(made)
	if shmid == nil {
		t.Fatalf("ipcmk in B: %q", made)
	}
	key := regexp.MustCompile(`(?m)^(0x[0-9a-f]+) +` + shmid[1] + ` `).FindStringSubmatch(mustInside(t, b, "", "ipcs -m"))
	if key == nil || key[1] == "0x00000000" {
		t.Fatalf("B's ipcs lacks segment %s or its key: %v", shmid[1], key)
	}
	if out := mustInside(t, b, "", `cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' '`); !strings.Contains(out, "b-marker-"+word) {
		t.Fatalf("B does not see its own marker process: %q", out)
	}
	aView := mustInside(t, a, "root", `cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' '; ls -a /dev/shm /home/user /tmp; ipcs -m`)
	if strings.Contains(aView, word) || strings.Contains(aView, key[1]) {
		t.Errorf("A sees B's process, files, shared memory or SysV segment %s:\n%s", key[1], aView)
	}

	mustInside(t, a, "", "xprop -root -f _CUBICLE_ISO 8s -set _CUBICLE_ISO a-"+word)
	if out := mustInside(t, a, "", "xprop -root _CUBICLE_ISO"); !strings.Contains(out, "a-"+word) {
		t.Fatalf("A does not read its own root property: %q", out)
	}
	if out, _ := inside(t, b, "", "xprop -root _CUBICLE_ISO"); strings.Contains(out, word) {
		t.Errorf("B's display shows A's root property: %q", out)
	}
	if out, _ := inside(t, a, "", "ls -a /tmp/.X11-unix 2>&1; cat /proc/net/unix | grep -c X11"); strings.Contains(out, word) {
		t.Errorf("A's X sockets: %q", out)
	}
}

// accessTokens checks that a's agent answers through the proxy only with
// a's token.
func accessTokens(t *testing.T, serverURL string, a, b *client.Sandbox) {
	ctx := context.Background()
	ia, err := a.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ia.AccessToken == "" || ib.AccessToken == "" || ia.AccessToken == ib.AccessToken {
		t.Fatalf("tokens: A set %v, B set %v, equal %v", ia.AccessToken != "", ib.AccessToken != "", ia.AccessToken == ib.AccessToken)
	}
	url := serverURL + "/sandboxes/" + a.ID() + "/agent/v1/screen"
	for _, tc := range []struct {
		name   string
		header string
		token  client.Token
		want   []int
	}{
		{"no token", "", "", []int{401, 403}},
		{"B's token", "X-Access-Token", ib.AccessToken, []int{401, 403}},
		{"B's token as bearer", "Authorization", "Bearer " + ib.AccessToken, []int{401, 403}},
		{"a made-up token", "X-Access-Token", "x" + ia.AccessToken, []int{401, 403}},
		{"A's token", "X-Access-Token", ia.AccessToken, []int{200}},
	} {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if tc.header != "" {
			req.Header.Set(tc.header, string(tc.token))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		ok := false
		for _, w := range tc.want {
			ok = ok || resp.StatusCode == w
		}
		if !ok {
			t.Errorf("%s: GET %s: %s, want %v", tc.name, url, resp.Status, tc.want)
		}
	}
}
