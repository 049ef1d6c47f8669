package version

import "testing"

func TestGet(t *testing.T) {
	for _, tc := range []struct {
		stamped, want string
	}{
		{stamped: "dev", want: "dev"}, // unstamped: the variable's own value
		{stamped: "", want: "dev"},    // stamped with an empty VERSION
		{stamped: "v0.1.0", want: "v0.1.0"},
		{stamped: "v0.0.0-gc583698-dirty", want: "v0.0.0-gc583698-dirty"},
	} {
		t.Run(tc.stamped, func(t *testing.T) {
			old := Version
			t.Cleanup(func() { Version = old })
			Version = tc.stamped
			if got := Get(); got != tc.want {
				t.Errorf("Get() with Version %q = %q, want %q", tc.stamped, got, tc.want)
			}
			if got, want := UserAgent(), "segment-operator/"+tc.want; got != want {
				t.Errorf("UserAgent() = %q, want %q", got, want)
			}
		})
	}
}
