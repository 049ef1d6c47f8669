package text

import (
	"testing"
	"unicode/utf8"
)

func TestCutKeepsTextWithinALimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{in: "short", n: 20, want: "short"},
		{in: "0123456789abcdefghij", n: 16, want: "0123456789 [...]"},
		{in: "ééééééééé", n: 13, want: "ééé [...]"}, // 7 bytes left: never half a rune
		{in: "0123456789", n: 3, want: " [."},       // a limit below the marker still holds
	} {
		got := Cut(tc.in, tc.n)
		if got != tc.want || len(got) > tc.n || !utf8.ValidString(got) {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
