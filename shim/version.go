package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// supportedVersions is what the Python plugin lists (cni_sysctl.SUPPORTED_VERSIONS).
var supportedVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// latestVersion is the cniVersion used when stdin names none the shim can use.
const latestVersion = "1.1.0"

// Beyond these the Python plugin's json module fails where Go's does not: its
// C scanner raises RecursionError near 1000 levels of nesting and Python 3.11
// refuses integers of more than 4300 digits. The shim answers VERSION only far
// below both and forwards anything else, so the daemon gives Python's answer.
const (
	maxAnsweredDepth     = 100
	maxAnsweredNumberLen = 100
)

// versionAnswer is the VERSION result, byte for byte what the Python plugin
// prints (cli.py, _version_info), or ok == false when the shim cannot be sure
// it would be: then the call is forwarded and the daemon answers.
func versionAnswer(stdin []byte) (answer []byte, ok bool) {
	version, ok := answeredVersion(stdin)
	if !ok {
		return nil, false
	}
	b := []byte(`{"cniVersion":`)
	b = appendJSONString(b, version)
	b = append(b, `,"supportedVersions":[`...)
	for i, v := range supportedVersions {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	return append(b, "]}\n"...), true
}

// answeredVersion is the cniVersion the Python plugin would answer VERSION
// with, when the shim can tell; see docs/daemon.md for the rule.
func answeredVersion(stdin []byte) (string, bool) {
	// Python tests bytes.strip(), whose whitespace includes \v and \f.
	if len(bytes.Trim(stdin, " \t\n\r\v\f")) == 0 {
		return latestVersion, true
	}
	if !utf8.Valid(stdin) || !withinPythonLimits(stdin) {
		return "", false
	}
	// A map, not a struct: struct fields match keys case-insensitively, and
	// Python's dict does not. Like Python, the last of repeated keys wins.
	// Unmarshal accepts "null" into a nil map; Python has no .get on None.
	var config map[string]json.RawMessage
	if err := json.Unmarshal(stdin, &config); err != nil || config == nil {
		return "", false
	}
	raw, present := config["cniVersion"]
	if !present || string(raw) == "null" {
		return latestVersion, true
	}
	var version string
	if err := json.Unmarshal(raw, &version); err != nil {
		return "", false // not a string: 0, false, [] and {} are Python edge cases, left to it
	}
	if version == "" {
		return latestVersion, true
	}
	for i := 0; i < len(version); i++ {
		c := version[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return "", false
		}
	}
	return version, true
}

// withinPythonLimits reports whether JSON text nests no deeper than
// maxAnsweredDepth and holds no number longer than maxAnsweredNumberLen.
// It only has to be right for text that then parses as JSON.
func withinPythonLimits(text []byte) bool {
	depth, number := 0, 0
	inString, escaped := false, false
	for _, c := range text {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' || ('0' <= c && c <= '9') {
			number++
			if number > maxAnsweredNumberLen {
				return false
			}
			continue
		}
		number = 0
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > maxAnsweredDepth {
				return false
			}
		case ']', '}':
			depth--
		}
	}
	return true
}

// appendJSONString encodes s as Python's json.dumps does (ensure_ascii): only
// printable ASCII stays as is, everything else is escaped with lowercase hex,
// beyond the BMP as a surrogate pair. Invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u4 := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case 0x20 <= r && r < 0x7f:
			b = append(b, byte(r))
		case r < 0x10000:
			b = u4(b, r)
		default:
			r -= 0x10000
			b = u4(b, 0xd800+(r>>10))
			b = u4(b, 0xdc00+(r&0x3ff))
		}
	}
	return append(b, '"')
}

// errorObject is a CNI error object as the Python plugin prints it
// (errors.py, to_json, dumped compactly): details only when there are some.
func errorObject(cniVersion string, code int, msg, details string) []byte {
	b := []byte(`{"cniVersion":`)
	b = appendJSONString(b, cniVersion)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"msg":`...)
	b = appendJSONString(b, msg)
	if details != "" {
		b = append(b, `,"details":`...)
		b = appendJSONString(b, details)
	}
	return append(b, "}\n"...)
}
