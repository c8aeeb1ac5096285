package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestOpenContainerNetns(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "netns-file")
	fifo := filepath.Join(dir, "fifo")
	link := filepath.Join(dir, "link")
	dangling := filepath.Join(dir, "dangling")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(regular, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		status     netnsStatus
		errno      syscall.Errno
	}{
		{"empty", "", netnsNotAttempted, 0},
		{"relative path", "var/run/netns/x", netnsNotAttempted, 0},
		{"libcni's placeholder for VERSION", "dummy", netnsNotAttempted, 0},
		{"missing file", filepath.Join(dir, "missing"), netnsFailed, syscall.ENOENT},
		{"below a regular file", filepath.Join(regular, "x"), netnsFailed, syscall.ENOTDIR},
		{"dangling symlink", dangling, netnsFailed, syscall.ENOENT},
		{"FIFO", fifo, netnsNotRegular, 0},
		{"directory", dir, netnsNotRegular, 0},
		{"character device", "/dev/null", netnsNotRegular, 0},
		{"regular file", regular, netnsOpened, 0},
		{"symlink to a regular file", link, netnsOpened, 0},
		{"a real netns file", "/proc/self/ns/net", netnsOpened, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan struct{})
			var fd int
			var status netnsStatus
			var errno syscall.Errno
			go func() {
				fd, status, errno = openContainerNetns(c.path)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: openContainerNetns blocked", c.path)
			}
			if status != c.status || errno != c.errno {
				t.Errorf("%s: got status %d errno %v, want %d %v", c.path, status, errno, c.status, c.errno)
			}
			if (fd >= 0) != (status == netnsOpened) {
				t.Errorf("%s: fd %d with status %d", c.path, fd, status)
			}
			if fd >= 0 {
				flags, _ := fcntl(fd, syscall.F_GETFD)
				if flags&syscall.FD_CLOEXEC == 0 {
					t.Errorf("%s: fd not close-on-exec", c.path)
				}
				syscall.Close(fd)
			}
		})
	}
}

func TestOpenContainerNetnsNeverCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent")
	openContainerNetns(path)
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists after the open: %v", path, err)
	}
}

func TestOpenOwnNetns(t *testing.T) {
	fd, err := openOwnNetns()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	var got, want syscall.Stat_t
	syscall.Fstat(fd, &got)
	syscall.Stat("/proc/self/ns/net", &want)
	if got.Dev != want.Dev || got.Ino != want.Ino {
		t.Errorf("fd is not this process's netns")
	}
}
