package main

import (
	"errors"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/google/go-cmp/cmp"
)

// TestSetGoMemoryLimit sets the runtime's limit from a container limit, or leaves it, and
// checks the runtime's limit and the start-up log line. The cases share the process's
// runtime limit and environment: none is parallel, each starts with a limit of 1GiB (as if
// the runtime had read GOMEMLIMIT=1GiB), and each restores both.
func TestSetGoMemoryLimit(t *testing.T) {
	const mi = 1 << 20
	const (
		start = 1024 * mi
		none  = math.MaxInt64
	)
	for _, tc := range []struct {
		name     string
		env      map[string]string // GOMEMLIMIT, AUTOMEMLIMIT
		ratio    float64
		provider memlimit.Provider
		want     int64 // the runtime's limit after
		wantLog  []any
		wantErr  bool
	}{{
		name:     "90% of the container's limit",
		ratio:    0.9,
		provider: memlimit.Limit(384 * mi),
		want:     362387865, // 0.9 × 384Mi, rounded down
		wantLog:  []any{"goMemoryLimit", "345.6MiB", "source", "cgroup", "containerMemoryLimit", "384MiB"},
	}, {
		name:     "all of it",
		ratio:    1,
		provider: memlimit.Limit(384 * mi),
		want:     384 * mi,
		wantLog:  []any{"goMemoryLimit", "384MiB", "source", "cgroup", "containerMemoryLimit", "384MiB"},
	}, {
		name:     "GOMEMLIMIT wins, and the container's limit is not read",
		env:      map[string]string{"GOMEMLIMIT": "200MiB"},
		ratio:    0.9,
		provider: errProvider(errRead),
		want:     start, // the runtime read GOMEMLIMIT as it started
		wantLog:  []any{"goMemoryLimit", "1024MiB", "source", "GOMEMLIMIT"},
	}, {
		name:     "AUTOMEMLIMIT=off",
		env:      map[string]string{"AUTOMEMLIMIT": "off"},
		ratio:    0.9,
		provider: errProvider(errRead),
		want:     start,
		wantLog:  []any{"goMemoryLimit", "1024MiB", "source", "AUTOMEMLIMIT=off"},
	}, {
		name:     "an AUTOMEMLIMIT ratio wins over the flag's",
		env:      map[string]string{"AUTOMEMLIMIT": "0.5"},
		ratio:    0.9,
		provider: memlimit.Limit(384 * mi),
		want:     192 * mi,
		wantLog:  []any{"goMemoryLimit", "192MiB", "source", "cgroup", "containerMemoryLimit", "384MiB"},
	}, {
		name:     "no limit in the cgroup",
		ratio:    0.9,
		provider: errProvider(memlimit.ErrNoLimit),
		want:     none,
		wantLog:  []any{"goMemoryLimit", "none", "source", "none", "reason", "the container has no memory limit"},
	}, {
		name:     "not on Linux",
		ratio:    0.9,
		provider: errProvider(memlimit.ErrCgroupsNotSupported),
		want:     start,
		wantLog:  []any{"goMemoryLimit", "1024MiB", "source", "none", "reason", memlimit.ErrCgroupsNotSupported.Error()},
	}, {
		name:     "the cgroup cannot be read",
		ratio:    0.9,
		provider: errProvider(os.ErrPermission),
		want:     start,
		wantErr:  true,
	}, {
		name:     "AUTOMEMLIMIT is no ratio",
		env:      map[string]string{"AUTOMEMLIMIT": "lots"},
		ratio:    0.9,
		provider: errProvider(errRead),
		want:     start,
		wantErr:  true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			before := debug.SetMemoryLimit(start)
			t.Cleanup(func() { debug.SetMemoryLimit(before) })
			for _, name := range []string{"GOMEMLIMIT", "AUTOMEMLIMIT"} {
				t.Setenv(name, tc.env[name]) // restored after the test
				if _, ok := tc.env[name]; !ok {
					if err := os.Unsetenv(name); err != nil {
						t.Fatal(err)
					}
				}
			}

			got, err := setGoMemoryLimit(tc.ratio, tc.provider)
			if (err != nil) != tc.wantErr {
				t.Fatalf("setGoMemoryLimit: error %v, want error: %v", err, tc.wantErr)
			}
			if now := debug.SetMemoryLimit(-1); now != tc.want {
				t.Errorf("runtime memory limit %d, want %d", now, tc.want)
			}
			if tc.wantErr {
				return
			}
			if got.limit != tc.want {
				t.Errorf("setGoMemoryLimit says the limit is %d, want %d", got.limit, tc.want)
			}
			if diff := cmp.Diff(tc.wantLog, got.logValues()); diff != "" {
				t.Errorf("log values (-want +got):\n%s", diff)
			}
		})
	}
}

// errRead is the error of a container limit that must not be read.
var errRead = errors.New("the container's memory limit was read")

func errProvider(err error) memlimit.Provider {
	return func() (uint64, error) { return 0, err }
}
