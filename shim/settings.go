package main

import (
	"errors"
	"strings"
)

// The shim's settings live in its own binary: a fixed block that
// `cni-sysctl install --mode daemon` rewrites in a copy of the file
// (docs/daemon.md). Nothing is looked up at run time, and no environment a
// runtime passes can point the shim at another socket.
const (
	settingsMarker = "CNI_SYSCTL_SHIM_CONFIG_V1:"
	settingsSize   = 1024
	nul64          = "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	nul1024 = nul64 + nul64 + nul64 + nul64 + nul64 + nul64 + nul64 + nul64 +
		nul64 + nul64 + nul64 + nul64 + nul64 + nul64 + nul64 + nul64
)

// settingsBlock is a variable, not a constant, so every read goes to the bytes
// in the file, as the installer left them. The constant operand is one string,
// so the block is contiguous in the binary; slicing it is what makes the result
// a variable. This is the only place the marker text may appear: the installer
// requires exactly one occurrence, so nothing else compares against it.
var settingsBlock = (settingsMarker + "socket=/run/cni-sysctl/cni-sysctl.sock\n" + nul1024)[:settingsSize]

// sunPathMax is the room for a path in sockaddr_un.sun_path, less its NUL.
const sunPathMax = 107

type settings struct {
	socket   string // the daemon's unix socket
	fallback string // the launcher to exec when the daemon is unreachable; "" for none
}

// parseSettings reads the KEY=VALUE lines that follow the marker, up to the
// first NUL. Unknown keys are ignored, so an older shim survives a newer
// installer; the last of repeated keys wins.
func parseSettings(block string) (settings, error) {
	var s settings
	if len(block) < len(settingsMarker) {
		return s, errors.New("the settings block is truncated")
	}
	body := block[len(settingsMarker):]
	if end := strings.IndexByte(body, 0); end >= 0 {
		body = body[:end]
	}
	for _, line := range strings.Split(body, "\n") {
		key, value, _ := strings.Cut(line, "=")
		switch key {
		case "socket":
			s.socket = value
		case "fallback":
			s.fallback = value
		}
	}
	switch {
	case s.socket == "":
		return s, errors.New("the settings block names no socket")
	case !strings.HasPrefix(s.socket, "/"):
		return s, errors.New("the socket in the settings block is not an absolute path: " + s.socket)
	case len(s.socket) > sunPathMax:
		return s, errors.New("the socket path in the settings block is longer than 107 bytes: " + s.socket)
	case s.fallback != "" && !strings.HasPrefix(s.fallback, "/"):
		return s, errors.New("the fallback in the settings block is not an absolute path: " + s.fallback)
	}
	return s, nil
}
