package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestCNIEnvironKeepsOnlyCNIVariables(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin",
		"CNI_COMMAND=ADD",
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=a=b", // '=' in the value stays
		"cni_lower=x",
		"XCNI_NOT=x",
		"CNI_EMPTY=",
		"CNI_NOEQUALS", // not a variable: Python's os.environ skips it too
		"CNI_RAW=\xff\xfe",
	}
	got := string(cniEnviron(environ))
	want := "CNI_COMMAND=ADD\x00CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=a=b\x00CNI_EMPTY=\x00CNI_RAW=\xff\xfe\x00"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestEncodeRequestFraming(t *testing.T) {
	env := []byte("CNI_COMMAND=ADD\x00")
	stdin := []byte("{\"cniVersion\":\"1.0.0\"}\x00\xff")
	got := encodeRequest(flagOwnNetns|flagContainerNetns, netnsFailed, 2, env, stdin)
	var want bytes.Buffer
	want.WriteString("CSQ1")
	for _, n := range []uint32{3, 3, 2, uint32(len(env))} {
		binary.Write(&want, binary.BigEndian, n)
	}
	want.Write(env)
	binary.Write(&want, binary.BigEndian, uint32(len(stdin)))
	want.Write(stdin)
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("got  %q\nwant %q", got, want.Bytes())
	}
	// The header is 5 words; then env; then one word and stdin.
	if len(got) != 20+len(env)+4+len(stdin) {
		t.Errorf("length %d", len(got))
	}
}

func TestReadReply(t *testing.T) {
	rep, err := readReply(bytes.NewReader(encodeReply(7, "{\"a\":1}\n", "log\n")))
	if err != nil || rep.exitCode != 7 || string(rep.stdout) != "{\"a\":1}\n" || string(rep.stderr) != "log\n" {
		t.Fatalf("got %+v, %v", rep, err)
	}
	// Empty stdout and stderr are a reply too (a DEL that succeeded).
	rep, err = readReply(bytes.NewReader(encodeReply(0, "", "")))
	if err != nil || rep.exitCode != 0 || len(rep.stdout)+len(rep.stderr) != 0 {
		t.Fatalf("empty: got %+v, %v", rep, err)
	}
}

func TestReadReplyCutAnywhere(t *testing.T) {
	whole := encodeReply(1, "{\"code\":7}\n", "cni-sysctl: error\n")
	for n := 0; n < len(whole); n++ {
		_, err := readReply(bytes.NewReader(whole[:n]))
		if !errors.Is(err, errReplyCut) {
			t.Errorf("cut after %d bytes: got %v, want errReplyCut", n, err)
		}
	}
}

func TestReadReplyMalformed(t *testing.T) {
	be := func(n uint32) string { var b [4]byte; binary.BigEndian.PutUint32(b[:], n); return string(b[:]) }
	for name, data := range map[string]string{
		"wrong magic":         "CSQ1" + be(0) + be(0) + be(0),
		"HTTP":                "HTTP/1.1 400 Bad Request\r\n\r\n",
		"lowercase magic":     "csr1" + be(0) + be(0) + be(0),
		"exit code above 255": "CSR1" + be(256) + be(0) + be(0),
		"huge stdout":         "CSR1" + be(0) + be(maxReplyStdout+1),
		"huge stderr":         "CSR1" + be(0) + be(0) + be(maxReplyStderr+1),
		"all ones":            strings.Repeat("\xff", 32),
	} {
		if _, err := readReply(strings.NewReader(data)); !errors.Is(err, errReplyMalformed) {
			t.Errorf("%s: got %v, want errReplyMalformed", name, err)
		}
	}
}

func TestReadReplyDoesNotTrustLengths(t *testing.T) {
	// A reply that announces 8 MiB and sends 3 bytes is cut, and the reader
	// must not have reserved 8 MiB for it: allocation follows the bytes.
	data := "CSR1" + "\x00\x00\x00\x00" + "\x00\x80\x00\x00" + "abc"
	if _, err := readReply(strings.NewReader(data)); !errors.Is(err, errReplyCut) {
		t.Fatalf("got %v", err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 20; i++ {
		readReply(strings.NewReader(data))
	}
	runtime.ReadMemStats(&after)
	if perCall := (after.TotalAlloc - before.TotalAlloc) / 20; perCall > 64<<10 {
		t.Errorf("%d bytes allocated per call", perCall)
	}
}

func FuzzReadReply(f *testing.F) {
	f.Add(encodeReply(0, "{}\n", ""))
	f.Add(encodeReply(1, "x", "y"))
	f.Add([]byte("CSR1\xff\xff\xff\xff"))
	f.Add([]byte("CSR1\x00\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := readReply(bytes.NewReader(data))
		if err == nil && (rep.exitCode > 255 || !bytes.HasPrefix(data, []byte(replyMagic))) {
			t.Fatalf("accepted %q as %+v", data, rep)
		}
		if err != nil && !errors.Is(err, errReplyCut) && !errors.Is(err, errReplyMalformed) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
