package main

// The shim as a runtime sees it: the binary from shim/build.sh, its settings
// block patched as the installer will, run against a stand-in daemon.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

const libcniVersionQuery = `{"cniVersion":"1.1.0"}`

func versionInfo(v string) string {
	return `{"cniVersion":"` + v + `","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}` + "\n"
}

func TestBuiltBinaryHoldsOneSettingsBlock(t *testing.T) {
	data, err := os.ReadFile(shimBinary)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte(settingsMarker)); n != 1 {
		t.Fatalf("the marker occurs %d times", n)
	}
	i := bytes.Index(data, []byte(settingsMarker))
	if i+settingsSize > len(data) || string(data[i:i+settingsSize]) != settingsBlock {
		t.Fatalf("the 1024 bytes at the marker are not the block as built")
	}
	// No other copy of the default socket either: only the block decides.
	if n := bytes.Count(data, []byte("/run/cni-sysctl/cni-sysctl.sock")); n != 1 {
		t.Errorf("the default socket path occurs %d times", n)
	}
}

func TestPatchedSettingsAreReadAtRunTime(t *testing.T) {
	// Two copies of one binary, patched apart, reach two daemons: the block
	// is read from the file at run time, not folded in at build time.
	for _, name := range []string{"a.sock", "b.sock"} {
		socket := filepath.Join(shortDir(t), name)
		d := startDaemon(t, socket, func(c *net.UnixConn, r request) {
			c.Write(encodeReply(0, `{"via":"`+name+`"}`+"\n", ""))
		})
		r := runShim(t, patchShim(t, "socket="+socket+"\n"), cniEnv("ADD"), strings.NewReader("{}"))
		d.next(t)
		if r.code != 0 || r.stdout != `{"via":"`+name+`"}`+"\n" {
			t.Errorf("%s: got %+v", name, r)
		}
	}
}

func TestVersionAnsweredWithoutTheDaemon(t *testing.T) {
	// A socket that is never there: a forward would take the 2 s retry.
	shim := patchShim(t, "socket="+filepath.Join(shortDir(t), "absent.sock")+"\n")
	for stdin, want := range map[string]string{
		libcniVersionQuery:              versionInfo("1.1.0"),
		`{"cniVersion":"0.4.0"}`:        versionInfo("0.4.0"),
		"":                              versionInfo("1.1.0"),
		" \n":                           versionInfo("1.1.0"),
		`{"cniVersion":"1.0.0"}` + "\n": versionInfo("1.0.0"),
	} {
		r := runShim(t, shim, cniEnv("VERSION", "CNI_NETNS=dummy"), strings.NewReader(stdin))
		if r.code != 0 || r.stdout != want || r.stderr != "" || r.elapsed > time.Second {
			t.Errorf("stdin %q: got %+v", stdin, r)
		}
	}
}

func TestVersionForwardedWhenUnsure(t *testing.T) {
	socket := filepath.Join(shortDir(t), "d.sock")
	python := `{"cniVersion":"1.1.0","code":6,"msg":"cniVersion 1 must be a string"}` + "\n"
	d := startDaemon(t, socket, func(c *net.UnixConn, r request) {
		c.Write(encodeReply(1, python, "cni-sysctl: error 6: cniVersion 1 must be a string\n"))
	})
	stdin := `{"cniVersion":1}`
	r := runShim(t, patchShim(t, "socket="+socket+"\n"), cniEnv("VERSION"), strings.NewReader(stdin))
	req := d.next(t)
	if string(req.stdin) != stdin || !contains(req.env, "CNI_COMMAND=VERSION\x00") {
		t.Errorf("the daemon got %+v", req)
	}
	if r.code != 1 || r.stdout != python {
		t.Errorf("got %+v", r)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRequestFraming(t *testing.T) {
	socket := filepath.Join(shortDir(t), "d.sock")
	d := startDaemon(t, socket, func(c *net.UnixConn, r request) {
		// Compare the fds before they are closed: the shim's own netns
		// (this process's, since the shim ran in it) and the container's.
		var own, self, container, file syscall.Stat_t
		syscall.Fstat(r.fds[0], &own)
		syscall.Stat("/proc/self/ns/net", &self)
		syscall.Fstat(r.fds[1], &container)
		syscall.Stat(c.LocalAddr().String()+".netns", &file)
		out := fmt.Sprintf("%v %v", own.Ino == self.Ino && own.Dev == self.Dev,
			container.Ino == file.Ino && container.Dev == file.Dev)
		c.Write(encodeReply(0, `"`+out+`"`, ""))
	})
	netns := socket + ".netns" // a regular file stands in for a netns file
	if err := os.WriteFile(netns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stdin := "{\"cniVersion\":\"1.0.0\"}\x00\xff raw \n bytes"
	env := cniEnv("ADD", "CNI_NETNS="+netns, "CNI_ARGS=K8S_POD_NAME=a;X=\xff\xfe", "HOME=/root", "cni_lower=1", "CNI_EMPTY=")
	r := runShim(t, patchShim(t, "socket="+socket+"\n"), env, strings.NewReader(stdin))
	req := d.next(t)
	if req.err != nil {
		t.Fatal(req.err)
	}
	var wantEnv []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "CNI_") {
			wantEnv = append(wantEnv, kv+"\x00")
		}
	}
	sort.Strings(wantEnv)
	sort.Strings(req.env)
	if fmt.Sprint(req.env) != fmt.Sprint(wantEnv) {
		t.Errorf("env: got %q\nwant %q", req.env, wantEnv)
	}
	if string(req.stdin) != stdin {
		t.Errorf("stdin: got %q", req.stdin)
	}
	if req.flags != flagOwnNetns|flagContainerNetns || req.status != 0 || req.errno != 0 || len(req.fds) != 2 {
		t.Errorf("flags %d status %d errno %d fds %d", req.flags, req.status, req.errno, len(req.fds))
	}
	if r.stdout != `"true true"` {
		t.Errorf("the fds are not the shim's netns and CNI_NETNS: %s", r.stdout)
	}
}

func TestNetnsStatusOnTheWire(t *testing.T) {
	dir := shortDir(t)
	socket := filepath.Join(dir, "d.sock")
	d := startDaemon(t, socket, nil)
	shim := patchShim(t, "socket="+socket+"\n")
	fifo := filepath.Join(dir, "fifo")
	regular := filepath.Join(dir, "file")
	syscall.Mkfifo(fifo, 0o600)
	os.WriteFile(regular, nil, 0o600)
	for _, c := range []struct {
		name, netns string
		status      netnsStatus
		errno       syscall.Errno
	}{
		{"unset", "", netnsNotAttempted, 0},
		{"relative path", "run/netns/x", netnsNotAttempted, 0},
		{"missing file", filepath.Join(dir, "missing"), netnsFailed, syscall.ENOENT},
		{"FIFO (must not block)", fifo, netnsNotRegular, 0},
		{"directory", dir, netnsNotRegular, 0},
		{"device", "/dev/null", netnsNotRegular, 0},
		{"regular file", regular, netnsOpened, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := cniEnv("DEL")
			if c.netns != "" {
				env = append(env, "CNI_NETNS="+c.netns)
			}
			r := runShim(t, shim, env, strings.NewReader("{}"))
			req := d.next(t)
			wantFlags, wantFds := uint32(flagOwnNetns), 1
			if c.status == netnsOpened {
				wantFlags, wantFds = flagOwnNetns|flagContainerNetns, 2
			}
			if r.code != 0 || netnsStatus(req.status) != c.status || syscall.Errno(req.errno) != c.errno ||
				req.flags != wantFlags || len(req.fds) != wantFds {
				t.Errorf("got status %d errno %d flags %d fds %d (exit %d)", req.status, req.errno, req.flags, len(req.fds), r.code)
			}
		})
	}
}

func TestReplyRelayed(t *testing.T) {
	socket := filepath.Join(shortDir(t), "d.sock")
	stdout := `{"cniVersion":"1.0.0","code":104,"msg":"net.ipv6.conf.eth0.accept_ra is 1, not 2"}` + "\n"
	stderr := "cni-sysctl: error 104: net.ipv6.conf.eth0.accept_ra is 1, not 2\n\xff raw log\n"
	startDaemon(t, socket, func(c *net.UnixConn, r request) { c.Write(encodeReply(1, stdout, stderr)) })
	r := runShim(t, patchShim(t, "socket="+socket+"\n"), cniEnv("CHECK"), strings.NewReader("{}"))
	if r.code != 1 || r.stdout != stdout || r.stderr != stderr {
		t.Errorf("got %+v", r)
	}
	// The exit code is relayed as is, whatever it is.
	socket2 := filepath.Join(shortDir(t), "d.sock")
	startDaemon(t, socket2, func(c *net.UnixConn, r request) { c.Write(encodeReply(255, "", "")) })
	if r := runShim(t, patchShim(t, "socket="+socket2+"\n"), cniEnv("GC"), strings.NewReader("{}")); r.code != 255 || r.stdout != "" {
		t.Errorf("got %+v", r)
	}
}

func TestConnectRetryReachesALateSocket(t *testing.T) {
	socket := filepath.Join(shortDir(t), "late.sock")
	shim := patchShim(t, "socket="+socket+"\n")
	daemon := make(chan *fakeDaemon, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		daemon <- startDaemon(t, socket, func(c *net.UnixConn, r request) { c.Write(encodeReply(0, "{}\n", "")) })
	}()
	r := runShim(t, shim, cniEnv("ADD"), strings.NewReader("{}"))
	(<-daemon).next(t)
	if r.code != 0 || r.stdout != "{}\n" || r.elapsed < 300*time.Millisecond || r.elapsed > 1500*time.Millisecond {
		t.Errorf("got %+v", r)
	}
}

func TestConnectRetryAfterRefusal(t *testing.T) {
	// A socket file without a listener (a daemon that died) refuses; the
	// restarted daemon's socket replaces it.
	socket := filepath.Join(shortDir(t), "d.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	shim := patchShim(t, "socket="+socket+"\n")
	go func() {
		time.Sleep(300 * time.Millisecond)
		os.Remove(socket)
		startDaemon(t, socket, nil)
	}()
	if r := runShim(t, shim, cniEnv("ADD"), strings.NewReader("{}")); r.code != 0 || r.elapsed < 300*time.Millisecond {
		t.Errorf("got %+v", r)
	}
}

func TestUnreachableGivesUpAfterTwoSeconds(t *testing.T) {
	t.Parallel() // beside the other 2 s waits
	socket := filepath.Join(shortDir(t), "absent.sock")
	shim := patchShim(t, "socket="+socket+"\n")
	msg := "cannot reach the cni-sysctl daemon at " + socket + ": [Errno 2] No such file or directory"
	details := "retried for 2 s; start the daemon ('cni-sysctl daemon') and check it with 'cni-sysctl daemon --check'"
	for _, c := range []struct {
		command, stdin string
		code           int
		stdout         string
	}{
		{"ADD", `{"cniVersion":"1.0.0","name":"n"}`, 1,
			`{"cniVersion":"1.0.0","code":11,"msg":"` + msg + `","details":"` + details + `"}` + "\n"},
		{"CHECK", `{"cniVersion":"0.4.0"}`, 1,
			`{"cniVersion":"0.4.0","code":11,"msg":"` + msg + `","details":"` + details + `"}` + "\n"},
		{"STATUS", `{"cniVersion":"1.1.0"}`, 1,
			`{"cniVersion":"1.1.0","code":50,"msg":"` + msg + `","details":"` + details + `"}` + "\n"},
		{"GC", `not json`, 1,
			`{"cniVersion":"1.1.0","code":11,"msg":"` + msg + `","details":"` + details + `"}` + "\n"},
		{"VERSION", `{"cniVersion":1}`, 1,
			`{"cniVersion":"1.1.0","code":11,"msg":"` + msg + `","details":"` + details + `"}` + "\n"},
		{"DEL", `{"cniVersion":"1.0.0"}`, 0, ""},
	} {
		c := c
		t.Run(c.command, func(t *testing.T) {
			t.Parallel()
			r := runShim(t, shim, cniEnv(c.command), strings.NewReader(c.stdin))
			if r.code != c.code || r.stdout != c.stdout {
				t.Errorf("got exit %d stdout %s\nwant exit %d stdout %s", r.code, r.stdout, c.code, c.stdout)
			}
			if !strings.Contains(r.stderr, msg) {
				t.Errorf("stderr: %q", r.stderr)
			}
			if r.elapsed < 2*time.Second || r.elapsed > 3500*time.Millisecond {
				t.Errorf("gave up after %v", r.elapsed)
			}
		})
	}
}

func TestBusyDaemonIsRetriedNotWaitedFor(t *testing.T) {
	t.Parallel()
	// A daemon that stopped accepting: its backlog is full, so a blocking
	// connect would wait for ever. The shim retries EAGAIN, then gives up.
	socket := filepath.Join(shortDir(t), "busy.sock")
	ln, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(ln)
	if err := syscall.Bind(ln, &syscall.SockaddrUnix{Name: socket}); err != nil {
		t.Fatal(err)
	}
	syscall.Listen(ln, 0)
	for filled := false; !filled; {
		c, _ := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
		defer syscall.Close(c)
		filled = syscall.Connect(c, &syscall.SockaddrUnix{Name: socket}) == syscall.EAGAIN
	}
	r := runShim(t, patchShim(t, "socket="+socket+"\n"), cniEnv("ADD"), strings.NewReader("{}"))
	if r.code != 1 || !strings.Contains(r.stdout, `"code":11,"msg":"cannot reach the cni-sysctl daemon at `+socket+`: [Errno 11] Resource temporarily unavailable"`) ||
		r.elapsed < 2*time.Second || r.elapsed > 3500*time.Millisecond {
		t.Errorf("got %+v", r)
	}
}

func TestUnreachableWithoutRetry(t *testing.T) {
	// ENOTDIR does not go away by waiting: no 2 s retry.
	file := filepath.Join(shortDir(t), "file")
	os.WriteFile(file, nil, 0o600)
	socket := filepath.Join(file, "d.sock")
	r := runShim(t, patchShim(t, "socket="+socket+"\n"), cniEnv("ADD"), strings.NewReader("{}"))
	want := `{"cniVersion":"1.1.0","code":11,"msg":"cannot reach the cni-sysctl daemon at ` + socket +
		`: [Errno 20] Not a directory","details":"start the daemon ('cni-sysctl daemon') and check it with 'cni-sysctl daemon --check'"}` + "\n"
	if r.code != 1 || r.stdout != want || r.elapsed > time.Second {
		t.Errorf("got %+v", r)
	}
}

// fallbackShim is a shim whose daemon is unreachable at once (ENOTDIR) and
// whose fallback is the test binary acting as fallbackHelper.
func fallbackShim(t *testing.T, fallback string) string {
	file := filepath.Join(shortDir(t), "file")
	os.WriteFile(file, nil, 0o600)
	return patchShim(t, "socket="+filepath.Join(file, "d.sock")+"\nfallback="+fallback+"\n")
}

func testBinary(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

func TestFallbackGetsTheCallUntouched(t *testing.T) {
	shim := fallbackShim(t, testBinary(t))
	stdin := "{\"cniVersion\":\"1.0.0\"}\n\x00\xff trailing"
	env := cniEnv("ADD", "SHIM_TEST_FALLBACK=1", "CNI_NETNS=/proc/self/ns/net", "OTHER=kept")
	r := runShim(t, shim, env, strings.NewReader(stdin), "arg1", "arg two")
	var got fallbackReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("the fallback did not run: %+v", r)
	}
	if want := []string{shim, "arg1", "arg two"}; fmt.Sprint(got.Argv) != fmt.Sprint(want) {
		t.Errorf("argv: got %q, want %q", got.Argv, want)
	}
	if fmt.Sprint(got.Env) != fmt.Sprint(env) {
		t.Errorf("env: got %q, want %q", got.Env, env)
	}
	if string(got.Stdin) != stdin {
		t.Errorf("stdin: got %q, want %q", got.Stdin, stdin)
	}
}

func TestFallbackGetsAForwardedVersionsStdin(t *testing.T) {
	// VERSION has read stdin before it knows it must forward: the fallback
	// gets the same bytes back, small or past a pipe's default capacity.
	shim := fallbackShim(t, testBinary(t))
	for _, stdin := range []string{`{"cniVersion":1}`, `{"cniVersion":1,"x":"` + strings.Repeat("x", 300<<10) + `"}`} {
		r := runShim(t, shim, cniEnv("VERSION", "SHIM_TEST_FALLBACK=1"), strings.NewReader(stdin))
		var got fallbackReport
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
			t.Fatalf("the fallback did not run: %.300q", r.stdout+r.stderr)
		}
		if string(got.Stdin) != stdin {
			t.Errorf("stdin: got %d bytes, want %d", len(got.Stdin), len(stdin))
		}
	}
}

func TestFallbackThatCannotRun(t *testing.T) {
	missing := filepath.Join(shortDir(t), "no-launcher")
	shim := fallbackShim(t, missing)
	r := runShim(t, shim, cniEnv("ADD"), strings.NewReader(`{"cniVersion":"0.4.0"}`))
	if r.code != 1 || !strings.Contains(r.stdout, `"code":11`) || !strings.Contains(r.stdout, `"cniVersion":"0.4.0"`) ||
		!strings.Contains(r.stdout, "the fallback "+missing+" could not be run: [Errno 2] No such file or directory") {
		t.Errorf("got %+v", r)
	}
	if r := runShim(t, shim, cniEnv("DEL"), strings.NewReader("{}")); r.code != 0 || r.stdout != "" {
		t.Errorf("DEL: got %+v", r)
	}
}

func TestBrokenConnectionNeverFallsBack(t *testing.T) {
	whole := encodeReply(0, `{"cniVersion":"1.0.0"}`+"\n", "log\n")
	cuts := map[string]func(c *net.UnixConn, r request){
		"closed before a byte":   func(c *net.UnixConn, r request) {},
		"cut in the magic":       func(c *net.UnixConn, r request) { c.Write(whole[:2]) },
		"cut in the exit code":   func(c *net.UnixConn, r request) { c.Write(whole[:6]) },
		"cut in stdout's size":   func(c *net.UnixConn, r request) { c.Write(whole[:10]) },
		"cut in stdout":          func(c *net.UnixConn, r request) { c.Write(whole[:20]) },
		"cut before stderr":      func(c *net.UnixConn, r request) { c.Write(whole[:len(whole)-8]) },
		"cut in stderr":          func(c *net.UnixConn, r request) { c.Write(whole[:len(whole)-2]) },
		"garbage":                func(c *net.UnixConn, r request) { c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) },
		"old magic":              func(c *net.UnixConn, r request) { c.Write(append([]byte("CSR0"), whole[4:]...)) },
		"oversized stdout":       func(c *net.UnixConn, r request) { c.Write([]byte("CSR1\x00\x00\x00\x00\xff\xff\xff\xff")) },
		"exit code out of range": func(c *net.UnixConn, r request) { c.Write(append([]byte("CSR1\x00\x00\x01\x00"), whole[8:]...)) },
	}
	for name, respond := range cuts {
		respond := respond
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			socket := filepath.Join(shortDir(t), "d.sock")
			d := startDaemon(t, socket, respond)
			// A fallback is installed and must not run: the daemon may have
			// done part of the work.
			shim := patchShim(t, "socket="+socket+"\nfallback="+testBinary(t)+"\n")
			add := runShim(t, shim, cniEnv("ADD", "SHIM_TEST_FALLBACK=1"), strings.NewReader(`{"cniVersion":"1.0.0"}`))
			d.next(t)
			if add.code != 1 || !strings.HasPrefix(add.stdout, `{"cniVersion":"1.0.0","code":11,"msg":"the cni-sysctl daemon at `+socket+` did not complete its reply: `) {
				t.Errorf("ADD: got %+v", add)
			}
			del := runShim(t, shim, cniEnv("DEL", "SHIM_TEST_FALLBACK=1"), strings.NewReader(`{"cniVersion":"1.0.0"}`))
			d.next(t)
			if del.code != 0 || del.stdout != "" || !strings.Contains(del.stderr, "did not complete its reply") {
				t.Errorf("DEL: got %+v", del)
			}
		})
	}
}

func TestEarlyReplyIsRelayed(t *testing.T) {
	// A daemon that answers from the header and closes without reading a
	// large stdin: the shim's send fails, the reply is still there.
	socket := filepath.Join(shortDir(t), "d.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		head := make([]byte, 20)
		c.Read(head)
		c.Write(encodeReply(1, `{"early":true}`+"\n", ""))
		c.Close()
	}()
	stdin := strings.Repeat(" ", 3<<20)
	r := runShim(t, patchShim(t, "socket="+socket+"\n"), cniEnv("ADD"), strings.NewReader(stdin))
	if r.code != 1 || r.stdout != `{"early":true}`+"\n" {
		t.Errorf("got %+v", r)
	}
}

func TestStdinLimit(t *testing.T) {
	socket := filepath.Join(shortDir(t), "d.sock")
	d := startDaemon(t, socket, nil)
	shim := patchShim(t, "socket="+socket+"\n")
	want := `{"cniVersion":"1.1.0","code":6,"msg":"network configuration on stdin larger than 4 MiB","details":"at most 4194304 bytes"}` + "\n"
	for _, command := range []string{"ADD", "DEL", "VERSION"} {
		// An endless stdin: the shim must stop reading, not buffer it all.
		r := runShim(t, shim, cniEnv(command), endless{})
		if r.code != 1 || r.stdout != want || r.elapsed > 5*time.Second {
			t.Errorf("%s: got %+v", command, r)
		}
	}
	// stdin is read before connecting: the daemon never saw a connection.
	d.none(t)
	// 4 MiB exactly is forwarded whole.
	stdin := strings.Repeat(" ", maxStdinLen-2) + "{}"
	if r := runShim(t, shim, cniEnv("ADD"), strings.NewReader(stdin)); r.code != 0 {
		t.Errorf("4 MiB: got %+v", r)
	}
	if req := d.next(t); len(req.stdin) != maxStdinLen {
		t.Errorf("4 MiB: the daemon got %d bytes", len(req.stdin))
	}
}

// slowStdin gives "{}" only after a delay, as a runtime slow to write the
// configuration would.
type slowStdin struct {
	delay time.Duration
	done  bool
}

func (s *slowStdin) Read(p []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	time.Sleep(s.delay)
	s.done = true
	return copy(p, "{}"), nil
}

func TestSlowStdinHoldsNoConnection(t *testing.T) {
	// The daemon gives a connection 10 s to carry its request: a shim
	// waiting for its stdin must not hold one (nor a daemon worker) meanwhile.
	socket := filepath.Join(shortDir(t), "d.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan time.Time, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		accepted <- time.Now()
		if r := readRequest(c); r.err == nil {
			c.Write(encodeReply(0, "", ""))
		}
	}()
	shim := patchShim(t, "socket="+socket+"\n")
	start := time.Now()
	delay := 700 * time.Millisecond
	r := runShim(t, shim, cniEnv("ADD"), &slowStdin{delay: delay})
	if r.code != 0 {
		t.Fatalf("got %+v", r)
	}
	select {
	case at := <-accepted:
		if at.Sub(start) < delay {
			t.Errorf("connected %v after start, before stdin was complete (%v)", at.Sub(start), delay)
		}
	default:
		t.Fatal("the daemon received no connection")
	}
}

func TestEnvLimit(t *testing.T) {
	socket := filepath.Join(shortDir(t), "d.sock")
	d := startDaemon(t, socket, nil)
	shim := patchShim(t, "socket="+socket+"\n")
	base := cniEnv("ADD", "CNI_NETNS=/proc/self/ns/net", "NOT_CNI="+strings.Repeat("y", 100<<10))
	size := len(cniEnviron(base))
	// Exactly at the limit: forwarded.
	args := "CNI_ARGS=" + strings.Repeat("a", maxEnvLen-size-len("CNI_ARGS=")-1)
	if r := runShim(t, shim, append(base, args), strings.NewReader("{}")); r.code != 0 {
		t.Errorf("at the limit: got %+v", r)
	}
	if req := d.next(t); len(cniEnviron(append(base, args))) != maxEnvLen || req.err != nil {
		t.Errorf("at the limit: %v", req.err)
	}
	// One byte more: refused, nothing sent.
	r := runShim(t, shim, append(base, args+"a"), strings.NewReader(`{"cniVersion":"1.0.0"}`))
	want := `{"cniVersion":"1.1.0","code":4,"msg":"CNI_* environment variables larger than 64 KiB","details":"largest: CNI_ARGS (` +
		fmt.Sprint(len(args)+2) + ` bytes); at most 65536 bytes in all, each variable counted as NAME=VALUE plus one"}` + "\n"
	if r.code != 1 || r.stdout != want {
		t.Errorf("over the limit: got %+v\nwant %s", r, want)
	}
	d.none(t)
}

func TestClosedStdout(t *testing.T) {
	// The runtime went away: EPIPE, no SIGPIPE death, no trace; the call
	// counts as failed since its result went nowhere.
	read, write, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	read.Close()
	defer write.Close()
	shim := patchShim(t, "socket=/nonexistent/d.sock\n")
	cmd := exec.Command(shim)
	cmd.Env = cniEnv("VERSION")
	cmd.Stdin = strings.NewReader(libcniVersionQuery)
	cmd.Stdout = write
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	exitErr, _ := err.(*exec.ExitError)
	if exitErr == nil || exitErr.ExitCode() != 1 {
		t.Fatalf("got %v, want exit status 1", err)
	}
	if !strings.Contains(stderr.String(), "cannot write the result to stdout") || strings.Contains(stderr.String(), "goroutine") {
		t.Errorf("stderr: %q", stderr.String())
	}
}

func TestClosedStdin(t *testing.T) {
	// With fd 0 closed the socket must not become fd 0: stdin reads empty.
	socket := filepath.Join(shortDir(t), "d.sock")
	d := startDaemon(t, socket, nil)
	shim := patchShim(t, "socket="+socket+"\n")
	cmd := exec.Command("/bin/sh", "-c", `exec "$0" <&-`, shim)
	cmd.Env = cniEnv("ADD")
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("got %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the shim hung with stdin closed")
	}
	if req := d.next(t); req.err != nil || len(req.stdin) != 0 {
		t.Errorf("got %+v", req)
	}
}

func TestAboutAndOperatorCommands(t *testing.T) {
	shim := patchShim(t, "socket=/run/x/d.sock\nfallback=/opt/cni-sysctl/bin/cni-sysctl\n")
	r := runShim(t, shim, []string{"PATH=/bin"}, nil)
	if r.code != 0 || r.stdout != "" ||
		!strings.Contains(r.stderr, "CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0") ||
		!strings.Contains(r.stderr, "/run/x/d.sock") || !strings.Contains(r.stderr, "/opt/cni-sysctl/bin/cni-sysctl runs the call") {
		t.Errorf("about: %+v", r)
	}
	r = runShim(t, shim, []string{"CNI_COMMAND="}, nil, "install", "--bin-dir", "/opt/cni/bin")
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "daemon's installation, for example /opt/cni-sysctl/bin/cni-sysctl") {
		t.Errorf("operator command: %+v", r)
	}
	if r = runShim(t, shim, nil, nil, "--help"); r.code != 0 || !strings.Contains(r.stderr, "CNI protocol versions") {
		t.Errorf("--help: %+v", r)
	}
}

func TestInvalidSettings(t *testing.T) {
	shim := patchShim(t, "socket=run/relative.sock\nfallback="+testBinary(t)+"\n")
	r := runShim(t, shim, cniEnv("ADD", "SHIM_TEST_FALLBACK=1"), strings.NewReader(`{"cniVersion":"1.0.0"}`))
	want := `{"cniVersion":"1.0.0","code":11,"msg":"the cni-sysctl shim cannot forward the call: the socket in the settings block is not an absolute path: run/relative.sock","details":"reinstall it with 'cni-sysctl install --mode daemon'"}` + "\n"
	if r.code != 1 || r.stdout != want || r.elapsed > time.Second {
		t.Errorf("got %+v", r)
	}
	if r := runShim(t, shim, cniEnv("DEL"), strings.NewReader("{}")); r.code != 0 || r.stdout != "" {
		t.Errorf("DEL: got %+v", r)
	}
	if r := runShim(t, shim, cniEnv("VERSION"), strings.NewReader(libcniVersionQuery)); r.code != 0 || r.stdout != versionInfo("1.1.0") {
		t.Errorf("VERSION: got %+v", r)
	}
}
