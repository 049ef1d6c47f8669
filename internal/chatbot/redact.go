package chatbot

import (
	"encoding/json"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
)

// redactedEcho is how a redacted echo of the token reads.
const redactedEcho = "[redacted]"

// echoWindow is the shortest run of the token's characters that counts as an echo of it:
// shorter runs give an attacker little, and would match ordinary words in error bodies.
const echoWindow = 8

// redactor removes echoes of a token from text the API sent back: the token itself, or
// any run of at least echoWindow of its characters (a partial echo), in any letter case,
// as it is, JSON-escaped or URL-encoded. A server, or whatever answers on its address, may
// echo the request in any of these forms; exact matching alone lets them through.
type redactor struct {
	// windows are the echoWindow-long runs of every form of the token, ASCII-lowercased;
	// a token shorter than echoWindow gives its whole forms.
	windows sets.Set[string]
	width   int
}

func newRedactor(token string) *redactor {
	forms := make([]string, 0, 5)
	forms = append(forms, token, url.QueryEscape(token), url.PathEscape(token))
	for _, escapeHTML := range []bool{true, false} { // and the two JSON string forms
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		_ = enc.Encode(token) // a string always encodes
		forms = append(forms, strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(b.String()), `"`), `"`))
	}
	r := &redactor{windows: sets.New[string](), width: min(echoWindow, len(token))}
	if r.width == 0 {
		return r
	}
	for _, f := range forms {
		f = lowerASCII(f)
		for i := 0; i+r.width <= len(f); i++ {
			r.windows.Insert(f[i : i+r.width])
		}
	}
	return r
}

// redact replaces every run of s made of echoWindow-long pieces of the token with
// "[redacted]".
func (r *redactor) redact(s string) string {
	if r.width == 0 || len(s) < r.width {
		return s
	}
	low := lowerASCII(s) // same length as s: offsets carry over
	var b strings.Builder
	done, end := 0, -1 // end: where the run being redacted ends; -1 while none
	for i := 0; i+r.width <= len(s); i++ {
		if !r.windows.Has(low[i : i+r.width]) {
			continue
		}
		if i > end { // a new run starts: keep what lies before it
			if end >= 0 {
				b.WriteString(redactedEcho)
				done = end
			}
			b.WriteString(s[done:i])
		}
		end = i + r.width
	}
	if end < 0 {
		return s
	}
	b.WriteString(redactedEcho)
	b.WriteString(s[end:])
	return b.String()
}

// lowerASCII lowercases ASCII letters only, byte by byte, so that the result has s's
// length whatever s holds (a Unicode lowercasing may change it, and so would a rewrite of
// invalid UTF-8).
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
