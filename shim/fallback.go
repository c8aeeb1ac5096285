package main

import (
	"syscall"
)

// fcntl command to resize a pipe (linux/fcntl.h); syscall does not name it.
const fSetPipeSz = 1031

// execFallback replaces the shim with the fallback launcher: same argv, same
// environment, same stdin. It returns only when execve failed.
//
// The shim reads stdin before it connects; consumed, that stdin is given
// back through a pipe filled before the exec (the launcher then reads
// exactly those bytes). nil (the shim could not forward at all, so it never
// read) leaves fd 0 as it was.
func execFallback(path string, argv, environ []string, consumed []byte) error {
	if consumed != nil {
		if err := replayStdin(consumed); err != nil {
			return err
		}
	}
	return syscall.Exec(path, argv, environ)
}

func replayStdin(data []byte) error {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return err
	}
	r, w := p[0], p[1]
	defer syscall.Close(r)
	defer syscall.Close(w)
	if len(data) > 64<<10 {
		// Past the default capacity: make room, best effort. Without it the
		// non-blocking write below stops with EAGAIN instead of hanging.
		syscall.Syscall(syscall.SYS_FCNTL, uintptr(w), fSetPipeSz, uintptr(len(data)))
	}
	if err := syscall.SetNonblock(w, true); err != nil {
		return err
	}
	for len(data) > 0 {
		n, err := syscall.Write(w, data)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	// dup3 leaves the new fd 0 without close-on-exec, as stdin must be.
	return syscall.Dup3(r, 0, 0)
}
