package text

import (
	"fmt"
	"strings"
)

// Plural says "1 member" or "2 members"; with a second form, that form for other counts
// ("1 member was", "2 members were").
func Plural(n int, one string, other ...string) string {
	if n == 1 {
		return "1 " + one
	}
	if len(other) > 0 {
		return fmt.Sprintf("%d %s", n, other[0])
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// Sample names up to three items, for messages.
func Sample(items []string) string {
	if len(items) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(items[:3], ", "), len(items)-3)
	}
	return strings.Join(items, ", ")
}
