package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The wire, version 1 (docs/daemon.md): one request and one reply per
// connection, integers unsigned 32-bit big-endian.
const (
	requestMagic = "CSQ1"
	replyMagic   = "CSR1"

	flagOwnNetns       = 1 << 0
	flagContainerNetns = 1 << 1

	maxEnvLen   = 64 << 10 // 65536
	maxStdinLen = 4 << 20  // 4194304

	// The daemon relays what the Python plugin printed: a result is at most
	// a converted prevResult, logs are short. Anything larger is not a reply.
	maxReplyStdout = 8 << 20
	maxReplyStderr = 1 << 20
)

// netnsStatus says what became of CNI_NETNS, so that the daemon reports for a
// path exactly what the direct plugin would.
type netnsStatus uint32

const (
	netnsOpened       netnsStatus = 0
	netnsNotAttempted netnsStatus = 1 // empty or not an absolute path
	netnsNotRegular   netnsStatus = 2 // a FIFO, a device, a directory: never opened
	netnsFailed       netnsStatus = 3 // stat or open failed: see the errno
)

// cniEnviron is the part of the environment the daemon gets: every CNI_*
// variable as NAME=VALUE\0, raw bytes. An entry without '=' is no variable.
func cniEnviron(environ []string) []byte {
	var b []byte
	for _, kv := range environ {
		if strings.HasPrefix(kv, "CNI_") && strings.Contains(kv, "=") {
			b = append(b, kv...)
			b = append(b, 0)
		}
	}
	return b
}

// encodeRequest frames one request. The fds travel beside it (SCM_RIGHTS).
func encodeRequest(flags uint32, status netnsStatus, errno uint32, env, stdin []byte) []byte {
	b := make([]byte, 0, 24+len(env)+len(stdin))
	b = append(b, requestMagic...)
	b = binary.BigEndian.AppendUint32(b, flags)
	b = binary.BigEndian.AppendUint32(b, uint32(status))
	b = binary.BigEndian.AppendUint32(b, errno)
	b = binary.BigEndian.AppendUint32(b, uint32(len(env)))
	b = append(b, env...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(stdin)))
	return append(b, stdin...)
}

type reply struct {
	exitCode int
	stdout   []byte
	stderr   []byte
}

// errReplyCut: the daemon went away before a whole reply; errReplyMalformed:
// what came is not a version-1 reply. Either way the call may be half done.
var (
	errReplyCut       = errors.New("the connection closed before a complete reply")
	errReplyMalformed = errors.New("malformed reply")
)

// readReply reads one reply. It allocates only as bytes arrive, so a length
// field from a confused peer cannot make it reserve memory it never fills.
func readReply(r io.Reader) (reply, error) {
	var rep reply
	var head [8]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return rep, cutOr(err)
	}
	if string(head[:4]) != replyMagic {
		return rep, fmt.Errorf("%w: starts with %q, not %q", errReplyMalformed, head[:4], replyMagic)
	}
	code := binary.BigEndian.Uint32(head[4:])
	if code > 255 {
		return rep, fmt.Errorf("%w: exit code %d", errReplyMalformed, code)
	}
	rep.exitCode = int(code)
	var err error
	if rep.stdout, err = readBlob(r, "stdout", maxReplyStdout); err != nil {
		return rep, err
	}
	if rep.stderr, err = readBlob(r, "stderr", maxReplyStderr); err != nil {
		return rep, err
	}
	return rep, nil
}

func readBlob(r io.Reader, name string, limit uint32) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, cutOr(err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > limit {
		return nil, fmt.Errorf("%w: %s of %d bytes (at most %d)", errReplyMalformed, name, n, limit)
	}
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		return nil, cutOr(err)
	}
	return buf.Bytes(), nil
}

// cutOr names an early EOF as a cut connection and keeps any other error.
func cutOr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errReplyCut
	}
	return fmt.Errorf("%w: %v", errReplyCut, err)
}
