package sources

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

func gzipped(s string) []byte {
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	_, _ = z.Write([]byte(s))
	_ = z.Close()
	return b.Bytes()
}

func TestParse(t *testing.T) {
	huge := gzipped(strings.Repeat("\n", MaxKeyBytes+1)) // a few KiB that expand past the cap
	longLine := gzipped(strings.Repeat("a", MaxKeyBytes+1))
	for _, tc := range []struct {
		name       string
		data       map[string]string
		binary     map[string][]byte
		limit      int64 // of weight; none if 0
		want       []string
		wantWeight int64 // bytes, and idCost an ID
		wantErr    string
		is         error // errTooLarge, errOverBudget
	}{
		{name: "one per line", data: map[string]string{"ids": "u1\nu2\nu3\n"}, want: []string{"u1", "u2", "u3"}, wantWeight: 9 + 3*idCost},
		{name: "blank lines, spaces and CRLF skipped", data: map[string]string{"ids": "\n  u1 \r\n\r\n\tu2\n"}, want: []string{"u1", "u2"}, wantWeight: 14 + 2*idCost},
		{name: "no final newline", data: map[string]string{"ids": "u1\nu2"}, want: []string{"u1", "u2"}, wantWeight: 5 + 2*idCost},
		{name: "empty", data: map[string]string{"ids": ""}, want: nil},
		{name: "gzip in binaryData: the bytes decompressed", binary: map[string][]byte{"ids": gzipped("u1\nu2\n")}, want: []string{"u1", "u2"}, wantWeight: 6 + 2*idCost},
		{name: "a bad line names its number", data: map[string]string{"ids": "u1\nu2\nnot-an-id\n"},
			wantErr: `ConfigMap "list", key "ids", line 3: "not-an-id" is not a ChatBot user ID`},
		{name: "two IDs on a line", data: map[string]string{"ids": "u1 u2\n"}, wantErr: `line 1: "u1 u2"`},
		{name: "an ID over 64 characters", data: map[string]string{"ids": strings.Repeat("x", 65)}, wantErr: "line 1"},
		{name: "a line over 4 KiB", data: map[string]string{"ids": "u1\nu2" + strings.Repeat(" ", maxLine) + "\n"},
			wantErr: fmt.Sprintf("line 2: longer than %d bytes", maxLine)},
		{name: "no such key", data: map[string]string{"other": "u1"}, wantErr: `ConfigMap "list", key "ids": no such key`},
		{name: "binaryData not gzip", binary: map[string][]byte{"ids": []byte("u1\n")}, wantErr: "binaryData must be gzip-compressed text"},
		{name: "a gzip bomb", binary: map[string][]byte{"ids": huge}, wantErr: fmt.Sprintf("more than %d bytes", MaxKeyBytes), is: errTooLarge},
		{name: "a bomb of one line: refused at its first 4 KiB", binary: map[string][]byte{"ids": longLine},
			wantErr: fmt.Sprintf("line 1: longer than %d bytes", maxLine)},
		{name: "data over the cap", data: map[string]string{"ids": "u1\n" + strings.Repeat(" \n", MaxKeyBytes/2)},
			wantErr: fmt.Sprintf("more than %d bytes", MaxKeyBytes), is: errTooLarge},
		{name: "heavier than the limit: read no further", data: map[string]string{"ids": "u1\nu2\nu3\n"}, limit: 100,
			wantErr: "more than 100 bytes with its IDs", is: errOverBudget},
		{name: "exactly the limit", data: map[string]string{"ids": "u1\nu2\n"}, limit: 6 + 2*idCost, want: []string{"u1", "u2"}, wantWeight: 6 + 2*idCost},
		{name: "blank lines weigh their bytes", data: map[string]string{"ids": strings.Repeat("\n", 200)}, limit: 199,
			wantErr: "more than 199 bytes", is: errOverBudget},
		{name: "more IDs than a Segment may have", data: map[string]string{"ids": strings.Repeat("u1\n", usersv1alpha1.MaxMembers+1)},
			wantErr: fmt.Sprintf("more than %d IDs", usersv1alpha1.MaxMembers)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "list"}, Data: tc.data, BinaryData: tc.binary}
			limit := tc.limit
			if limit == 0 {
				limit = 1 << 40
			}
			got, weight, err := parse(cm, "ids", limit)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
			case tc.wantErr != "" && got != nil:
				t.Fatalf("IDs returned with an error: %q", got)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Fatalf("err = %v, want it to wrap %v", err, tc.is)
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case !slices.Equal(got, tc.want) || weight != tc.wantWeight:
				t.Fatalf("got %q, weighing %d; want %q, %d", got, weight, tc.want, tc.wantWeight)
			}
		})
	}
	if len(huge) > 8<<10 {
		t.Fatalf("the bomb is %d bytes", len(huge))
	}
}
