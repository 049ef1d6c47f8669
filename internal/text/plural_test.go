package text

import "testing"

func TestPlural(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{Plural(1, "member"), "1 member"},
		{Plural(0, "member"), "0 members"},
		{Plural(2, "member was", "members were"), "2 members were"},
		{Plural(1, "member was", "members were"), "1 member was"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestSample(t *testing.T) {
	for _, tc := range []struct {
		items []string
		want  string
	}{
		{nil, ""},
		{[]string{"a"}, "a"},
		{[]string{"a", "b", "c"}, "a, b, c"},
		{[]string{"a", "b", "c", "d", "e"}, "a, b, c and 2 more"},
	} {
		if got := Sample(tc.items); got != tc.want {
			t.Errorf("Sample(%q) = %q, want %q", tc.items, got, tc.want)
		}
	}
}
