package chatbot

import "testing"

func TestRedactor(t *testing.T) {
	for _, tc := range []struct {
		name, token, in, want string
	}{
		{"no echo", "0123456789abcdef", "segment not found", "segment not found"},
		{"whole", "0123456789abcdef", "token 0123456789abcdef refused", "token [redacted] refused"},
		{"a piece of 8", "0123456789abcdef", "token 89ABCDEF refused", "token [redacted] refused"},
		{"a piece of 7 is no echo", "0123456789abcdef", "token 9abcdef refused", "token 9abcdef refused"},
		{"two echoes", "0123456789abcdef", "01234567 and 89abcdef", "[redacted] and [redacted]"},
		{"back to back", "0123456789abcdef", "x0123456789abcdef0123456789abcdefx", "x[redacted]x"},
		{"at both ends", "0123456789abcdef", "0123456789abcdef", "[redacted]"},
		{"short token, whole only", "abc", "xabcx ab", "x[redacted]x ab"},
		{"empty token", "", "anything", "anything"},
		{"invalid UTF-8 around it", "0123456789abcdef", "\xff01234567\xfe", "\xff[redacted]\xfe"},
		{"JSON-escaped", `ab"cd<ef/gh`, `ab\"cd\u003cef/gh`, `[redacted]`},
		{"URL-encoded", `ab cd/ef+gh`, `ab+cd%2Fef%2Bgh`, `[redacted]`},
	} {
		if got := newRedactor(tc.token).redact(tc.in); got != tc.want {
			t.Errorf("%s: redact(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}
