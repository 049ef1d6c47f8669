package controller

import (
	"bytes"
	"compress/gzip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func gzipped(s string) []byte {
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	_, _ = z.Write([]byte(s))
	_ = z.Close()
	return b.Bytes()
}

func TestParseSource(t *testing.T) {
	huge := gzipped(strings.Repeat("a", maxSourceBytes+1)) // a few KiB that expand past the cap
	for _, tc := range []struct {
		name    string
		data    map[string]string
		binary  map[string][]byte
		want    []string
		wantErr string
	}{
		{name: "one per line", data: map[string]string{"ids": "u1\nu2\nu3\n"}, want: []string{"u1", "u2", "u3"}},
		{name: "blank lines, spaces and CRLF skipped", data: map[string]string{"ids": "\n  u1 \r\n\r\n\tu2\n"}, want: []string{"u1", "u2"}},
		{name: "no final newline", data: map[string]string{"ids": "u1\nu2"}, want: []string{"u1", "u2"}},
		{name: "empty", data: map[string]string{"ids": ""}, want: nil},
		{name: "gzip in binaryData", binary: map[string][]byte{"ids": gzipped("u1\nu2\n")}, want: []string{"u1", "u2"}},
		{name: "a bad line names its number", data: map[string]string{"ids": "u1\nu2\nnot-an-id\n"},
			wantErr: `ConfigMap "list", key "ids", line 3: "not-an-id" is not a ChatBot user ID`},
		{name: "two IDs on a line", data: map[string]string{"ids": "u1 u2\n"}, wantErr: `line 1: "u1 u2"`},
		{name: "an ID over 64 characters", data: map[string]string{"ids": strings.Repeat("x", 65)}, wantErr: "line 1"},
		{name: "no such key", data: map[string]string{"other": "u1"}, wantErr: `ConfigMap "list", key "ids": no such key`},
		{name: "binaryData not gzip", binary: map[string][]byte{"ids": []byte("u1\n")}, wantErr: "binaryData must be gzip-compressed text"},
		{name: "a gzip bomb", binary: map[string][]byte{"ids": huge}, wantErr: "more than 1048576 bytes"},
		{name: "data over the cap", data: map[string]string{"ids": strings.Repeat("u1\n", maxSourceBytes/3+1)}, wantErr: "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "list"}, Data: tc.data, BinaryData: tc.binary}
			got, err := parseSource(cm, "ids")
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
			case tc.wantErr != "" && got != nil:
				t.Fatalf("IDs returned with an error: %q", got)
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case !slices.Equal(got, tc.want):
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if len(huge) > 8<<10 {
		t.Fatalf("the bomb is %d bytes", len(huge))
	}
}
