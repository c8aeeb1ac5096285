package main

import (
	"errors"
	"strings"
	"syscall"
)

// openOwnNetns opens the shim's own network namespace, which the daemon
// compares with the container's (a CNI_NETNS naming the runtime's own netns is
// refused) and which is where the shim was asked to act from.
func openOwnNetns() (int, error) {
	return syscall.Open("/proc/self/ns/net", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
}

// openContainerNetns opens CNI_NETNS the way the direct plugin does, so both
// report the same error for the same path: only an absolute path, only a
// regular file (a netns file is one, bind-mounted or under /proc/PID/ns/).
// It never creates anything and never opens a FIFO (which would block) or a
// device (some have side effects on open). fd is -1 unless status is opened.
func openContainerNetns(path string) (fd int, status netnsStatus, errno syscall.Errno) {
	if !strings.HasPrefix(path, "/") {
		return -1, netnsNotAttempted, 0
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return -1, netnsFailed, errnoOf(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return -1, netnsNotRegular, 0
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return -1, netnsFailed, errnoOf(err)
	}
	// The path may have been swapped between stat and open: O_NONBLOCK kept a
	// FIFO from blocking, and this keeps anything irregular out of the request.
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return -1, netnsFailed, errnoOf(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return -1, netnsNotRegular, 0
	}
	return fd, netnsOpened, 0
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}
