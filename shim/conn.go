package main

import (
	"io"
	"syscall"
	"time"
)

// The daemon replaces its socket when it restarts: for a moment the path is
// missing (ENOENT), refuses (ECONNREFUSED) or has a full backlog (EAGAIN on a
// non-blocking connect). The shim retries those for a while; anything else
// (EACCES, ENOTSOCK, ...) will not go away by waiting.
const (
	connectWindow = 2 * time.Second
	connectPause  = 50 * time.Millisecond
)

// daemonConn is a connected unix stream socket, used with plain syscalls: no
// poller, no goroutines, and MSG_NOSIGNAL on every send.
type daemonConn struct{ fd int }

// connectDaemon connects to the socket at path, retrying within window.
func connectDaemon(path string, window time.Duration) (*daemonConn, error) {
	deadline := time.Now().Add(window)
	for {
		fd, err := connectOnce(path)
		if err == nil {
			return &daemonConn{fd: fd}, nil
		}
		if err != syscall.ENOENT && err != syscall.ECONNREFUSED && err != syscall.EAGAIN {
			return nil, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, err
		}
		if left > connectPause {
			left = connectPause
		}
		time.Sleep(left)
	}
}

func connectOnce(path string) (int, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	// Non-blocking so that a daemon too busy to accept is an EAGAIN to retry,
	// not a wait without end; blocking again once connected.
	err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
	for err == syscall.EINTR {
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
	}
	if err == nil {
		err = syscall.SetNonblock(fd, false)
	}
	if err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// send writes the whole request; the fds ride on the first sendmsg, which
// carries the first byte (docs/daemon.md).
func (c *daemonConn) send(request []byte, fds []int) error {
	oob := syscall.UnixRights(fds...)
	for len(request) > 0 {
		n, err := syscall.SendmsgN(c.fd, request, oob, nil, syscall.MSG_NOSIGNAL)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite // a blocking stream socket sends at least a byte
		}
		request, oob = request[n:], nil
	}
	return nil
}

// Read makes the connection an io.Reader for readReply.
func (c *daemonConn) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(c.fd, p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *daemonConn) close() { syscall.Close(c.fd) }
