package main

import (
	"strings"
	"testing"
)

func TestSettingsBlockAsBuilt(t *testing.T) {
	if len(settingsBlock) != settingsSize {
		t.Fatalf("block is %d bytes, want %d", len(settingsBlock), settingsSize)
	}
	want := "CNI_SYSCTL_SHIM_CONFIG_V1:socket=/run/cni-sysctl/cni-sysctl.sock\n"
	if !strings.HasPrefix(settingsBlock, want) {
		t.Fatalf("block starts %q", settingsBlock[:80])
	}
	if strings.Trim(settingsBlock[len(want):], "\x00") != "" {
		t.Errorf("padding is not all NUL")
	}
	s, err := parseSettings(settingsBlock)
	if err != nil || s != (settings{socket: "/run/cni-sysctl/cni-sysctl.sock"}) {
		t.Errorf("got %+v, %v", s, err)
	}
}

func block(lines string) string {
	b := settingsMarker + lines
	return b + strings.Repeat("\x00", settingsSize-len(b))
}

func TestParseSettings(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       settings
		err        string
	}{
		{"socket and fallback", "socket=/s\nfallback=/opt/cni-sysctl/launcher\n", settings{"/s", "/opt/cni-sysctl/launcher"}, ""},
		{"no final newline", "socket=/s", settings{socket: "/s"}, ""},
		{"unknown keys are ignored", "version=2\nsocket=/s\nfuture=x\n", settings{socket: "/s"}, ""},
		{"the last of repeated keys wins", "socket=/a\nsocket=/b\n", settings{socket: "/b"}, ""},
		{"values keep '=' and spaces", "socket=/a b=c\n", settings{socket: "/a b=c"}, ""},
		{"everything after the first NUL is ignored", "socket=/a\n\x00socket=/b\n", settings{socket: "/a"}, ""},
		{"no socket", "fallback=/f\n", settings{}, "names no socket"},
		{"empty block", "", settings{}, "names no socket"},
		{"relative socket", "socket=run/x.sock\n", settings{}, "not an absolute path"},
		{"socket too long", "socket=/" + strings.Repeat("x", 107) + "\n", settings{}, "longer than 107 bytes"},
		{"relative fallback", "socket=/s\nfallback=cni-sysctl\n", settings{}, "fallback"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseSettings(block(c.body))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("got %+v, %v; want an error with %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
	if _, err := parseSettings("CNI_"); err == nil {
		t.Errorf("a truncated block parsed")
	}
}

// FuzzParseSettings: whatever an installer (or a corrupted file) left in the
// block, no panic, and a block that parses names an absolute socket.
func FuzzParseSettings(f *testing.F) {
	f.Add(settingsBlock)
	f.Add(block("socket=/s\nfallback=/f\n"))
	f.Add(block("socket=\nfallback\n=\x00"))
	f.Fuzz(func(t *testing.T, b string) {
		s, err := parseSettings(b)
		if err == nil && (!strings.HasPrefix(s.socket, "/") || len(s.socket) > sunPathMax) {
			t.Fatalf("accepted %+v", s)
		}
	})
}
