package main

// The test side of the wire: a daemon stand-in that records each request and
// answers as a test tells it, and helpers to build, patch and run the shim.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shimBinary is the shim as shim/build.sh builds it, made once per test run.
var shimBinary string

func TestMain(m *testing.M) {
	if os.Getenv("SHIM_TEST_FALLBACK") == "1" {
		os.Exit(fallbackHelper())
	}
	dir, err := os.MkdirTemp("", "shim-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shimBinary = filepath.Join(dir, "cni-sysctl")
	build := exec.Command("bash", "build.sh", shimBinary)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "shim/build.sh:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fallbackHelper stands in for the fallback launcher: the test binary itself,
// exec'd by the shim, reporting what it was given.
func fallbackHelper() int {
	stdin, _ := io.ReadAll(os.Stdin)
	json.NewEncoder(os.Stdout).Encode(fallbackReport{Argv: os.Args, Env: os.Environ(), Stdin: stdin})
	return 0
}

type fallbackReport struct {
	Argv  []string
	Env   []string
	Stdin []byte
}

// shortDir is a temporary directory with a short path: sun_path holds 107 bytes.
func shortDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "shim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// patchShim copies the built shim and rewrites its settings block, as the
// installer does: same offset, same length.
func patchShim(t *testing.T, lines string) string {
	t.Helper()
	data, err := os.ReadFile(shimBinary)
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte(settingsMarker)
	if n := bytes.Count(data, marker); n != 1 {
		t.Fatalf("the marker occurs %d times in %s", n, shimBinary)
	}
	block := settingsMarker + lines
	if len(block) > settingsSize {
		t.Fatalf("settings too long")
	}
	block += strings.Repeat("\x00", settingsSize-len(block))
	copy(data[bytes.Index(data, marker):], block)
	path := filepath.Join(shortDir(t), "cni-sysctl")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// request is what the stand-in daemon received on one connection.
type request struct {
	flags, status, errno uint32
	env                  []string
	stdin                []byte
	fds                  []int
	err                  error // io.EOF: the shim closed before sending anything
}

type fakeDaemon struct {
	socket   string
	requests chan request
}

// startDaemon listens on socket and, for each connection, reads one request
// and hands it with the connection to respond (nil: reply exit 0, no output).
// The connection is closed after respond returns.
func startDaemon(t testing.TB, socket string, respond func(c *net.UnixConn, r request)) *fakeDaemon {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	d := &fakeDaemon{socket: socket, requests: make(chan request, 16)}
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := readRequest(c)
				d.requests <- r
				if r.err != nil {
					return
				}
				if respond == nil {
					c.Write(encodeReply(0, "", ""))
				} else {
					respond(c, r)
				}
				for _, fd := range r.fds {
					syscall.Close(fd)
				}
			}()
		}
	}()
	return d
}

func readRequest(c *net.UnixConn) request {
	var r request
	buf := make([]byte, 64<<10)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if n == 0 {
		if err == nil {
			err = io.EOF
		}
		r.err = err
		return r
	}
	if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			fds, _ := syscall.ParseUnixRights(&m)
			r.fds = append(r.fds, fds...)
		}
	}
	in := io.MultiReader(bytes.NewReader(buf[:n]), c)
	var head [20]byte
	if _, err := io.ReadFull(in, head[:]); err != nil {
		r.err = err
		return r
	}
	if string(head[:4]) != requestMagic {
		r.err = fmt.Errorf("magic %q", head[:4])
		return r
	}
	r.flags = binary.BigEndian.Uint32(head[4:])
	r.status = binary.BigEndian.Uint32(head[8:])
	r.errno = binary.BigEndian.Uint32(head[12:])
	env := make([]byte, binary.BigEndian.Uint32(head[16:]))
	if _, err := io.ReadFull(in, env); err != nil {
		r.err = err
		return r
	}
	for _, kv := range strings.SplitAfter(string(env), "\x00") {
		if kv != "" {
			r.env = append(r.env, kv)
		}
	}
	var size [4]byte
	if _, err := io.ReadFull(in, size[:]); err != nil {
		r.err = err
		return r
	}
	r.stdin = make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(in, r.stdin); err != nil {
		r.err = err
	}
	return r
}

func (d *fakeDaemon) next(t *testing.T) request {
	t.Helper()
	select {
	case r := <-d.requests:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon received no connection")
	}
	return request{}
}

func (d *fakeDaemon) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-d.requests:
		t.Fatalf("the daemon was contacted: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
}

type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// runShim runs a shim binary as a runtime would: a small explicit
// environment, stdin, a time limit (a hang is a failure).
func runShim(t *testing.T, bin string, env []string, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("the shim hung: %v", ctx.Err())
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running the shim: %v", err)
	}
	checkOutput(t, r)
	return r
}

// checkOutput: stdout is empty or exactly one JSON document; no Go runtime
// trace anywhere.
func checkOutput(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{r.stdout, r.stderr} {
		if strings.Contains(s, "goroutine ") || strings.Contains(s, "panic:") {
			t.Fatalf("Go trace in the output:\n%s", s)
		}
	}
	if r.stdout == "" {
		return
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var doc interface{}
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("stdout is not JSON: %q", r.stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON document: %q", r.stdout)
	}
}

// cniEnv is a runtime's environment for command, plus extra.
func cniEnv(command string, extra ...string) []string {
	return append([]string{
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=c0ffee",
		"CNI_IFNAME=eth0",
		"CNI_PATH=/opt/cni/bin",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}, extra...)
}

func encodeReply(code uint32, stdout, stderr string) []byte {
	var b bytes.Buffer
	b.WriteString(replyMagic)
	binary.Write(&b, binary.BigEndian, code)
	binary.Write(&b, binary.BigEndian, uint32(len(stdout)))
	b.WriteString(stdout)
	binary.Write(&b, binary.BigEndian, uint32(len(stderr)))
	b.WriteString(stderr)
	return b.Bytes()
}

// endless is a stdin that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
