// The daemon-mode shim: installed as /opt/cni/bin/cni-sysctl, it forwards
// each CNI call, with the container's netns as an open file descriptor, to the
// resident `cni-sysctl daemon` over a root-only unix socket and relays the
// reply. It knows nothing of sysctls. docs/daemon.md is its specification.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(runMain())
}

func runMain() (code int) {
	guardStdio()
	// Nothing may reach stdout but one JSON document: a panic's trace goes to
	// stderr by itself, and the runtime gets an error object instead of nothing.
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "cni-sysctl: internal error in the shim: %v\n", r)
			code = emit(outcome{code: 1, stdout: errorObject(latestVersion, 999,
				fmt.Sprintf("internal error in the cni-sysctl shim: %v", r),
				"an unexpected failure in the daemon-mode shim (please report it)")})
		}
	}()
	s := &shim{
		args:          os.Args,
		environ:       os.Environ(),
		stdin:         os.Stdin,
		connectWindow: connectWindow,
		execFallback:  execFallback,
	}
	s.settings, s.settingsErr = parseSettings(settingsBlock)
	return emit(s.run())
}

// guardStdio gives a closed fd 0, 1 or 2 /dev/null: otherwise the socket
// could become fd 0 and the shim would read its own connection as stdin.
func guardStdio() {
	for fd := 0; fd <= 2; fd++ {
		if _, err := fcntl(fd, syscall.F_GETFD); err == syscall.EBADF {
			// open returns the lowest free fd: this one.
			syscall.Open("/dev/null", syscall.O_RDWR, 0)
		}
	}
}

func fcntl(fd, cmd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// outcome is what the shim prints and how it exits.
type outcome struct {
	code   int
	stdout []byte
	stderr []byte
}

// emit writes an outcome and returns its exit code. A runtime that closed
// stdout gets EPIPE, not a SIGPIPE death; the call then counts as failed, since
// its result went nowhere.
func emit(o outcome) int {
	signal.Ignore(syscall.SIGPIPE)
	if len(o.stderr) > 0 {
		os.Stderr.Write(o.stderr)
	}
	if len(o.stdout) > 0 {
		if _, err := os.Stdout.Write(o.stdout); err != nil {
			fmt.Fprintf(os.Stderr, "cni-sysctl: cannot write the result to stdout: %v\n", err)
			if o.code == 0 {
				return 1
			}
		}
	}
	return o.code
}

type shim struct {
	args          []string
	environ       []string
	stdin         io.Reader
	settings      settings
	settingsErr   error
	connectWindow time.Duration
	execFallback  func(path string, argv, environ []string, consumed []byte) error
}

func (s *shim) getenv(name string) string {
	// The first occurrence wins, as with getenv(3).
	for _, kv := range s.environ {
		if strings.HasPrefix(kv, name) && len(kv) > len(name) && kv[len(name)] == '=' {
			return kv[len(name)+1:]
		}
	}
	return ""
}

func (s *shim) run() outcome {
	command := s.getenv("CNI_COMMAND")
	if command == "" {
		if len(s.args) > 1 {
			return s.operator(s.args[1])
		}
		return outcome{stderr: s.about()}
	}
	if command == "VERSION" {
		// Runtimes ask every plugin of every conflist they load: answered
		// here, VERSION costs no round trip and works without the daemon.
		stdin, failed := s.readStdin()
		if failed != nil {
			return *failed
		}
		if answer, ok := versionAnswer(stdin); ok {
			return outcome{stdout: answer}
		}
		return s.forward(command, stdin)
	}
	return s.forward(command, nil)
}

// forward sends the call to the daemon and relays its reply. consumed is
// stdin when it was already read (a VERSION the shim could not answer).
func (s *shim) forward(command string, consumed []byte) outcome {
	if s.settingsErr != nil {
		return s.unreachable(command, consumed, s.settingsErr)
	}
	env := cniEnviron(s.environ)
	if len(env) > maxEnvLen {
		// Refused before anything is sent, as the Python plugin refuses it.
		stdin, failed := consumed, (*outcome)(nil)
		if stdin == nil {
			stdin, failed = s.readStdin()
		}
		if failed != nil {
			return *failed
		}
		return failure(latestVersion, 4, "CNI_* environment variables larger than 64 KiB",
			fmt.Sprintf("largest: %s; at most %d bytes in all, each variable counted as NAME=VALUE plus one",
				largestVariable(s.environ), maxEnvLen))
	}

	flags := uint32(0)
	var fds []int
	if own, err := openOwnNetns(); err == nil {
		defer syscall.Close(own)
		flags |= flagOwnNetns
		fds = append(fds, own)
	}
	netnsFd, status, errno := openContainerNetns(s.getenv("CNI_NETNS"))
	if status == netnsOpened {
		defer syscall.Close(netnsFd)
		flags |= flagContainerNetns
		fds = append(fds, netnsFd)
	}

	stdin := consumed
	if stdin == nil {
		// Read before connecting: a runtime slow to write the configuration
		// holds no daemon worker meanwhile (the daemon gives a connection 10 s
		// to carry its request). The fallback gets these bytes back.
		var failed *outcome
		if stdin, failed = s.readStdin(); failed != nil {
			return *failed
		}
	}
	conn, err := connectDaemon(s.settings.socket, s.connectWindow)
	if err != nil {
		return s.unreachable(command, stdin, err)
	}
	defer conn.close()

	sendErr := conn.send(encodeRequest(flags, status, uint32(errno), env, stdin), fds)
	// Even when sending failed, a daemon that answered early and closed has
	// left its whole reply readable.
	rep, err := readReply(conn)
	if err != nil {
		if sendErr != nil {
			err = fmt.Errorf("%w (sending the request: %s)", err, describe(sendErr))
		}
		return s.broken(command, stdin, err)
	}
	return outcome{code: rep.exitCode, stdout: rep.stdout, stderr: rep.stderr}
}

// readStdin reads the whole configuration, but never more than the wire
// carries: past 4 MiB it stops reading and the call fails, as it does with the
// Python plugin.
func (s *shim) readStdin() ([]byte, *outcome) {
	data, err := io.ReadAll(io.LimitReader(s.stdin, maxStdinLen+1))
	if err != nil {
		o := failure(latestVersion, 5, "cannot read the network configuration from stdin: "+describe(err), "")
		return nil, &o
	}
	if len(data) > maxStdinLen {
		o := failure(latestVersion, 6, "network configuration on stdin larger than 4 MiB",
			fmt.Sprintf("at most %d bytes", maxStdinLen))
		return nil, &o
	}
	return data, nil
}

// unreachable: the daemon could not be reached (or the settings block names
// none). The fallback launcher, if installed, runs the call; otherwise DEL
// succeeds (the plugin keeps no state, so there is nothing to undo), STATUS
// says the plugin is not available and everything else is to be retried.
func (s *shim) unreachable(command string, consumed []byte, cause error) outcome {
	msg := "cannot reach the cni-sysctl daemon at " + s.settings.socket + ": " + describe(cause)
	details := "start the daemon ('cni-sysctl daemon') and check it with 'cni-sysctl daemon --check'"
	switch cause {
	case syscall.ENOENT, syscall.ECONNREFUSED, syscall.EAGAIN:
		details = "retried for 2 s; " + details
	case syscall.EACCES, syscall.EPERM:
		details = "the socket is root's alone: runtimes run plugins as root; check the daemon with 'cni-sysctl daemon --check'"
	}
	if s.settingsErr != nil {
		msg = "the cni-sysctl shim cannot forward the call: " + s.settingsErr.Error()
		details = "reinstall it with 'cni-sysctl install --mode daemon'"
	} else if s.settings.fallback != "" {
		err := s.execFallback(s.settings.fallback, s.args, s.environ, consumed)
		details += "; the fallback " + s.settings.fallback + " could not be run: " + describe(err)
	}
	if command == "DEL" {
		return outcome{stderr: []byte("cni-sysctl: " + msg + delDone)}
	}
	code := 11
	if command == "STATUS" {
		code = 50
	}
	return failure(s.errorVersion(consumed), code, msg, details)
}

// delDone ends the log line of a DEL that succeeds without the daemon.
const delDone = "; DEL succeeds all the same: the plugin keeps no state to undo\n"

// broken: the connection failed after the request may have reached the
// daemon, which may have done part of the work. No fallback then: the
// runtime's retry (or, for ADD, its DEL) repairs it.
func (s *shim) broken(command string, stdin []byte, cause error) outcome {
	msg := "the cni-sysctl daemon at " + s.settings.socket + " did not complete its reply: " + cause.Error()
	if command == "DEL" {
		return outcome{stderr: []byte("cni-sysctl: " + msg + delDone)}
	}
	return failure(s.errorVersion(stdin), 11, msg,
		"the call may be partly done and is safe to retry; see the daemon's log and 'cni-sysctl daemon --check'")
}

// errorVersion is the cniVersion of an error object: stdin's, when the shim
// can read it as for VERSION, else 1.1.0. stdin is read here (consumed is nil)
// only when no fallback needs it any more.
func (s *shim) errorVersion(consumed []byte) string {
	stdin := consumed
	if stdin == nil {
		var failed *outcome
		if stdin, failed = s.readStdin(); failed != nil {
			return latestVersion
		}
	}
	if v, ok := answeredVersion(stdin); ok {
		return v
	}
	return latestVersion
}

// failure is an error object on stdout, exit 1, and the same line on stderr
// that the Python plugin logs.
func failure(cniVersion string, code int, msg, details string) outcome {
	return outcome{
		code:   1,
		stdout: errorObject(cniVersion, code, msg, details),
		stderr: []byte(fmt.Sprintf("cni-sysctl: error %d: %s\n", code, msg)),
	}
}

// describe names an error as Python names an OSError ("[Errno 2] No such
// file or directory"), so the shim's messages read like the plugin's.
func describe(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	text := errno.Error()
	if text != "" {
		text = strings.ToUpper(text[:1]) + text[1:]
	}
	return fmt.Sprintf("[Errno %d] %s", int(errno), text)
}

// largestVariable names the biggest CNI_* variable and its size.
func largestVariable(environ []string) string {
	name, size := "", -1
	for _, kv := range environ {
		if strings.HasPrefix(kv, "CNI_") && strings.Contains(kv, "=") && len(kv)+1 > size {
			name, _, _ = strings.Cut(kv, "=")
			size = len(kv) + 1
		}
	}
	return fmt.Sprintf("%s (%d bytes)", name, size)
}

func (s *shim) about() []byte {
	var b strings.Builder
	b.WriteString("cni-sysctl (daemon-mode shim): sets network sysctls inside a container's network namespace (CNI meta plugin)\n")
	b.WriteString("CNI protocol versions supported: " + strings.Join(supportedVersions, ", ") + "\n\n")
	if s.settingsErr != nil {
		b.WriteString("This shim cannot forward calls: " + s.settingsErr.Error() + ".\n")
		b.WriteString("Reinstall it with 'cni-sysctl install --mode daemon'.\n")
	} else {
		b.WriteString("Each CNI call is forwarded to the cni-sysctl daemon at " + s.settings.socket + ".\n")
		if s.settings.fallback != "" {
			b.WriteString("When the daemon is unreachable, " + s.settings.fallback + " runs the call.\n")
		} else {
			b.WriteString("When the daemon is unreachable, DEL succeeds, STATUS reports 50 and other calls fail with 11 (try again later).\n")
		}
	}
	b.WriteString(s.operatorHint())
	return []byte(b.String())
}

func (s *shim) operator(arg string) outcome {
	if arg == "-h" || arg == "--help" || arg == "help" {
		return outcome{stderr: s.about()}
	}
	return outcome{code: 2, stderr: []byte("cni-sysctl: '" + arg + "': this is the daemon-mode shim, which only forwards CNI calls.\n" + s.operatorHint())}
}

func (s *shim) operatorHint() string {
	hint := "Operator commands (install, explain, daemon --check, ...) belong to the cni-sysctl of the daemon's installation"
	if s.settingsErr == nil && s.settings.fallback != "" {
		hint += ", for example " + s.settings.fallback
	}
	return hint + ".\n"
}
