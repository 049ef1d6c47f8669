package text

import "unicode/utf8"

// more ends a text that Cut shortened.
const more = " [...]"

// Cut shortens s to at most n bytes, on a rune boundary, and says that it did.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < len(more) {
		return more[:n]
	}
	i := n - len(more)
	for i > 0 && !utf8.RuneStart(s[i]) { // s[i] is the first byte cut: not inside a rune
		i--
	}
	return s[:i] + more
}
