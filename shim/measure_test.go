package main

// What the shim costs a call, against the floor (a static C program) and a Go
// CNI plugin (Debian's tuning). Not a test: run it on purpose, on an idle
// machine, as docs/daemon.md ("Why the shim is Go") says:
//
//	SHIM_MEASURE=1 shim/test.sh -v -run Measure

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

const measureRuns = 200

// A static C program that does what the shim does for VERSION: read stdin,
// print a fixed answer.
const staticC = `#include <unistd.h>
int main(void) {
	static char buf[65536];
	static const char answer[] = "{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n";
	while (read(0, buf, sizeof buf) > 0) {}
	return write(1, answer, sizeof answer - 1) == sizeof answer - 1 ? 0 : 1;
}
`

// The same in Go, with nothing else: the floor of any Go program.
const minimalGo = `package main

import "os"

func main() {
	buf := make([]byte, 65536)
	for {
		if n, _ := os.Stdin.Read(buf); n <= 0 {
			break
		}
	}
	os.Stdout.Write([]byte("{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"))
}
`

type target struct {
	name  string
	path  string
	env   []string
	stdin string
	times []time.Duration
}

func TestMeasure(t *testing.T) {
	if os.Getenv("SHIM_MEASURE") == "" {
		t.Skip("set SHIM_MEASURE=1 to measure")
	}
	dir := shortDir(t)
	var targets []*target
	query := `{"cniVersion":"1.0.0"}`
	versionEnv := []string{"CNI_COMMAND=VERSION", "CNI_NETNS=dummy", "CNI_PATH=/usr/lib/cni"}

	cProgram := filepath.Join(dir, "version-c")
	os.WriteFile(cProgram+".c", []byte(staticC), 0o644)
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", cProgram, cProgram+".c").CombinedOutput(); err != nil {
		t.Logf("no static C baseline (gcc -static failed: %v %s)", err, out)
	} else {
		targets = append(targets, &target{name: "static C, prints VERSION", path: cProgram, env: versionEnv, stdin: query})
	}
	goProgram := filepath.Join(dir, "version-go")
	os.Mkdir(goProgram+".src", 0o755)
	os.WriteFile(filepath.Join(goProgram+".src", "main.go"), []byte(minimalGo), 0o644)
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", goProgram, ".")
	build.Dir = goProgram + ".src"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the minimal Go program: %v %s", err, out)
	}
	targets = append(targets, &target{name: "minimal Go, prints VERSION", path: goProgram, env: versionEnv, stdin: query})
	if _, err := os.Stat("/usr/lib/cni/tuning"); err == nil {
		targets = append(targets, &target{name: "tuning VERSION (Go, Debian)", path: "/usr/lib/cni/tuning", env: versionEnv, stdin: query})
	}
	targets = append(targets, &target{name: "shim VERSION (answered)", path: shimBinary, env: versionEnv, stdin: query})

	// The forwarded round trip: a stand-in daemon that replies at once.
	socket := filepath.Join(dir, "d.sock")
	reply := encodeReply(0, `{"cniVersion":"1.0.0"}`+"\n", "")
	d := startDaemon(t, socket, func(c *net.UnixConn, r request) { c.Write(reply) })
	go func() {
		for range d.requests { // nobody asks for them here
		}
	}()
	netns := filepath.Join(dir, "netns")
	os.WriteFile(netns, nil, 0o600)
	forwarded := patchShim(t, "socket="+socket+"\n")
	targets = append(targets, &target{name: "shim ADD forwarded, instant reply", path: forwarded,
		env:   []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c0ffee", "CNI_NETNS=" + netns, "CNI_IFNAME=eth0", "CNI_PATH=/usr/lib/cni"},
		stdin: `{"cniVersion":"1.0.0","name":"n","type":"cni-sysctl","sysctl":["ipv6.conf.accept_ra=2"],"prevResult":{"cniVersion":"1.0.0"}}`})

	for _, tg := range targets { // warm the page cache
		runOnce(t, tg)
	}
	// Interleaved, one run of each per cycle, starting one later each cycle:
	// a slow moment of the machine hits every target alike.
	for i := 0; i < measureRuns; i++ {
		for j := range targets {
			tg := targets[(i+j)%len(targets)]
			tg.times = append(tg.times, runOnce(t, tg))
		}
	}
	st, _ := os.Stat(shimBinary)
	var report strings.Builder
	fmt.Fprintf(&report, "shim binary: %d bytes (%s)\n", st.Size(), shimBinary)
	fmt.Fprintf(&report, "%d interleaved runs each, wall time of fork+exec+wait from Go's os/exec:\n", measureRuns)
	fmt.Fprintf(&report, "%-36s %9s %9s %9s %9s\n", "", "median", "p10", "p90", "max RSS")
	for _, tg := range targets {
		sort.Slice(tg.times, func(a, b int) bool { return tg.times[a] < tg.times[b] })
		n := len(tg.times)
		fmt.Fprintf(&report, "%-36s %7.3fms %7.3fms %7.3fms %9s\n", tg.name,
			ms(tg.times[n/2]), ms(tg.times[n/10]), ms(tg.times[n*9/10]), maxRSS(tg))
	}
	t.Log("\n" + report.String())
}

func runOnce(t *testing.T, tg *target) time.Duration {
	cmd := exec.Command(tg.path)
	cmd.Env = tg.env
	cmd.Stdin = strings.NewReader(tg.stdin)
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil || !strings.Contains(string(out), `"cniVersion":"1.0.0"`) {
		t.Fatalf("%s: %v %q", tg.name, err, out)
	}
	return d
}

// maxRSS is the peak RSS of one run under GNU time, which forks (a child of
// Go's os/exec is a vfork of the test binary and would report that size).
func maxRSS(tg *target) string {
	cmd := exec.Command("/usr/bin/time", "-f", "%M", tg.path)
	cmd.Env = tg.env
	cmd.Stdin = strings.NewReader(tg.stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if cmd.Run() != nil {
		return "?"
	}
	lines := strings.Fields(stderr.String())
	return lines[len(lines)-1] + "kB"
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkForwardRoundTrip is the forward alone, in process: connect, send
// a request with the netns fd, read an instant reply.
//
//	shim/test.sh -run XXX -bench RoundTrip
func BenchmarkForwardRoundTrip(b *testing.B) {
	socket := filepath.Join(shortDir(b), "d.sock")
	reply := encodeReply(0, `{"cniVersion":"1.0.0"}`+"\n", "")
	d := startDaemon(b, socket, func(c *net.UnixConn, r request) { c.Write(reply) })
	go func() {
		for range d.requests {
		}
	}()
	own, err := openOwnNetns()
	if err != nil {
		b.Fatal(err)
	}
	request := encodeRequest(flagOwnNetns, netnsNotAttempted, 0,
		cniEnviron(cniEnv("ADD")), []byte(`{"cniVersion":"1.0.0","name":"n","type":"cni-sysctl"}`))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := connectDaemon(socket, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.send(request, []int{own}); err != nil {
			b.Fatal(err)
		}
		if _, err := readReply(c); err != nil {
			b.Fatal(err)
		}
		c.close()
	}
}
