package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const forwarded = "(forwarded)"

// Each input is answered by the shim with the cniVersion given, or forwarded
// to the daemon. An answer must be what the Python plugin prints; a forward
// is always safe, so every doubt is a forward.
var versionCases = []struct {
	name, stdin, want string
}{
	{"empty", "", "1.1.0"},
	{"JSON whitespace", " \t\n\r", "1.1.0"},
	{"Python's bytes.strip also strips \\v and \\f", "\v\f \n", "1.1.0"},
	{"other C0 control is no whitespace", "\x1c", forwarded},
	{"no-break space is no whitespace", "\u00a0", forwarded},
	{"NUL", "\x00", forwarded},
	{"empty object", "{}", "1.1.0"},
	{"libcni's question", `{"cniVersion":"1.0.0"}`, "1.0.0"},
	{"0.4.0 with whitespace around", " \n{ \"cniVersion\" : \"0.4.0\" }\r\n\t", "0.4.0"},
	{"a whole config", `{"cniVersion":"0.3.1","name":"n","type":"cni-sysctl","sysctl":["ipv6.conf.accept_ra=2"],"prevResult":{"interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[]}}`, "0.3.1"},
	{"unsupported versions are echoed, as Python does", `{"cniVersion":"9.9.9"}`, "9.9.9"},
	{"printable ASCII is echoed", `{"cniVersion":" 1.0.0 ~!#$%'()*+,-./:;=?@[]^_{|}` + "`" + `"}`, " 1.0.0 ~!#$%'()*+,-./:;=?@[]^_{|}`"},
	{"null version", `{"cniVersion":null}`, "1.1.0"},
	{"empty version", `{"cniVersion":""}`, "1.1.0"},
	{"escaped key", `{"cni\u0056ersion":"1.0.0"}`, "1.0.0"},
	{"escaped value", `{"cniVersion":"1.0\u002e0"}`, "1.0.0"},
	{"keys are case-sensitive", `{"CNIVERSION":"1.0.0","cniversion":"0.4.0"}`, "1.1.0"},
	{"duplicate keys: the last wins", `{"cniVersion":"1.0.0","cniVersion":"0.4.0"}`, "0.4.0"},
	{"duplicate keys: a last null wins", `{"cniVersion":"1.0.0","cniVersion":null}`, "1.1.0"},
	{"duplicate keys: a last string wins", `{"cniVersion":null,"cniVersion":"1.0.0"}`, "1.0.0"},
	{"duplicate keys: a last number forwards", `{"cniVersion":"1.0.0","cniVersion":1}`, forwarded},
	{"escaped lone surrogate elsewhere", `{"cniVersion":"1.0.0","x":"\ud800"}`, "1.0.0"},
	{"brackets inside strings do not nest", `{"cniVersion":"1.0.0","x":"` + strings.Repeat("[{", 300) + `"}`, "1.0.0"},
	{"escaped quotes inside strings", `{"x":"\"[[[","cniVersion":"1.0.0","y":"\\"}`, "1.0.0"},
	{"nesting within the limit", `{"cniVersion":"1.0.0","x":` + strings.Repeat("[", 99) + strings.Repeat("]", 99) + `}`, "1.0.0"},
	{"nesting beyond the limit", `{"cniVersion":"1.0.0","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, forwarded},
	{"nesting where Python's json fails", `{"cniVersion":"1.0.0","x":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`, forwarded},
	{"nested objects beyond the limit", strings.Repeat(`{"a":`, 101) + "1" + strings.Repeat("}", 101), forwarded},
	{"a number within the limit", `{"cniVersion":"1.0.0","x":` + strings.Repeat("1", 100) + `}`, "1.0.0"},
	{"a number beyond the limit", `{"cniVersion":"1.0.0","x":` + strings.Repeat("1", 101) + `}`, forwarded},
	{"an integer Python 3.11 refuses", `{"cniVersion":"1.0.0","x":` + strings.Repeat("7", 5000) + `}`, forwarded},
	{"large exponent", `{"cniVersion":"1.0.0","x":1e400}`, "1.0.0"},
	{"number version", `{"cniVersion":1}`, forwarded},
	{"zero version (Python answers 1.1.0: left to it)", `{"cniVersion":0}`, forwarded},
	{"boolean version", `{"cniVersion":true}`, forwarded},
	{"false version", `{"cniVersion":false}`, forwarded},
	{"array version", `{"cniVersion":["1.0.0"]}`, forwarded},
	{"empty array version", `{"cniVersion":[]}`, forwarded},
	{"object version", `{"cniVersion":{}}`, forwarded},
	{"non-ASCII version", `{"cniVersion":"1.0.0\u00e9"}`, forwarded},
	{"raw non-ASCII version", "{\"cniVersion\":\"1.0.0\u00e9\"}", forwarded},
	{"control character in version", `{"cniVersion":"1.0.0\u0000"}`, forwarded},
	{"DEL in version", `{"cniVersion":"1.0.0\u007f"}`, forwarded},
	{"quote in version", `{"cniVersion":"1.0\"0"}`, forwarded},
	{"backslash in version", `{"cniVersion":"1.0\\0"}`, forwarded},
	{"< in version", `{"cniVersion":"<1.0.0"}`, forwarded},
	{"> in version", `{"cniVersion":"1.0.0>"}`, forwarded},
	{"& in version", `{"cniVersion":"1.0&0"}`, forwarded},
	{"top-level null", "null", forwarded},
	{"top-level array", `["cniVersion","1.0.0"]`, forwarded},
	{"top-level string", `"1.0.0"`, forwarded},
	{"top-level number", "1", forwarded},
	{"two documents", `{"cniVersion":"1.0.0"}{}`, forwarded},
	{"trailing garbage", `{"cniVersion":"1.0.0"}x`, forwarded},
	{"trailing \\v (no JSON whitespace)", "{\"cniVersion\":\"1.0.0\"}\v", forwarded},
	{"trailing comma", `{"cniVersion":"1.0.0",}`, forwarded},
	{"single quotes", `{'cniVersion':'1.0.0'}`, forwarded},
	{"truncated", `{"cniVersion":"1.0.0"`, forwarded},
	{"NaN", `{"cniVersion":"1.0.0","x":NaN}`, forwarded},
	{"Infinity", `{"cniVersion":"1.0.0","x":-Infinity}`, forwarded},
	{"invalid UTF-8", "{\"cniVersion\":\"1.0.0\",\"x\":\"\xff\"}", forwarded},
	{"UTF-8-encoded surrogate", "{\"cniVersion\":\"1.0.0\",\"x\":\"\xed\xa0\x80\"}", forwarded},
	{"UTF-8 byte order mark", "\xef\xbb\xbf{\"cniVersion\":\"1.0.0\"}", forwarded},
	{"UTF-16", "{\x00}\x00", forwarded},
	{"raw control character in a string", "{\"cniVersion\":\"1.0.0\",\"x\":\"\t\"}", forwarded},
	{"a large config", `{"cniVersion":"1.0.0","x":"` + strings.Repeat("x", 1<<20) + `"}`, "1.0.0"},
}

func TestVersionAnsweredOrForwarded(t *testing.T) {
	for _, c := range versionCases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := answeredVersion([]byte(c.stdin))
			if !ok {
				got = forwarded
			}
			if got != c.want {
				t.Errorf("stdin %.80q: got %q, want %q", c.stdin, got, c.want)
			}
		})
	}
}

func TestVersionAnswerBytes(t *testing.T) {
	// What cni_sysctl.cli._version_info prints: compact, supportedVersions in
	// order, one newline.
	for stdin, want := range map[string]string{
		`{"cniVersion":"1.0.0"}`: `{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}` + "\n",
		"":                       `{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}` + "\n",
		`{"cniVersion":"a b'c"}`: `{"cniVersion":"a b'c","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}` + "\n",
	} {
		got, ok := versionAnswer([]byte(stdin))
		if !ok || string(got) != want {
			t.Errorf("stdin %q: got %q (answered %v), want %q", stdin, got, ok, want)
		}
	}
	if got, ok := versionAnswer([]byte("null")); ok || got != nil {
		t.Errorf("null: got %q, %v; want a forward", got, ok)
	}
}

func TestJSONStringAsPython(t *testing.T) {
	// Expected values are json.dumps(s) of CPython 3.11.
	for s, want := range map[string]string{
		"plain":            `"plain"`,
		"":                 `""`,
		"q\"b\\":           `"q\"b\\"`,
		"\n\r\t\b\f":       `"\n\r\t\b\f"`,
		"\x00\x01\x1f":     `"\u0000\u0001\u001f"`,
		"\x7f":             `"\u007f"`,
		"<>&'/":            `"<>&'/"`,
		"é":                `"\u00e9"`,
		"\u2028":           `"\u2028"`,
		"\U0001F600":       `"\ud83d\ude00"`,
		"bad \xff byte":    `"bad \ufffd byte"`,
		"/run/x y.sock":    `"/run/x y.sock"`,
		"\uffff\U00010000": `"\uffff\ud800\udc00"`,
	} {
		if got := string(appendJSONString(nil, s)); got != want {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

func TestErrorObjectShape(t *testing.T) {
	got := string(errorObject("0.4.0", 11, "m \"x\"", "d"))
	want := `{"cniVersion":"0.4.0","code":11,"msg":"m \"x\"","details":"d"}` + "\n"
	if got != want {
		t.Errorf("got %s want %s", got, want)
	}
	// Python's to_json leaves out empty details.
	if got := string(errorObject("1.1.0", 6, "m", "")); got != `{"cniVersion":"1.1.0","code":6,"msg":"m"}`+"\n" {
		t.Errorf("no details: got %s", got)
	}
}

// FuzzVersionAnswer: whatever stdin holds, no panic, and an answer is one
// JSON object naming the cniVersion that stdin names (or 1.1.0).
func FuzzVersionAnswer(f *testing.F) {
	for _, c := range versionCases {
		if len(c.stdin) < 4096 {
			f.Add([]byte(c.stdin))
		}
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		answer, ok := versionAnswer(stdin)
		if !ok {
			return
		}
		var info struct {
			CNIVersion        string   `json:"cniVersion"`
			SupportedVersions []string `json:"supportedVersions"`
		}
		if err := json.Unmarshal(answer, &info); err != nil {
			t.Fatalf("answer %q is not JSON: %v", answer, err)
		}
		var config map[string]interface{}
		if json.Unmarshal(stdin, &config) == nil {
			if v, _ := config["cniVersion"].(string); v != "" && v != info.CNIVersion {
				t.Fatalf("stdin %q names %q, answer %q", stdin, v, info.CNIVersion)
			}
		}
	})
}
