package main

import (
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// sourceNone is goMemoryLimit.source when no limit is set: the container has none, or it
// cannot be read.
const sourceNone = "none"

// goMemoryLimit says what the Go runtime's soft memory limit is and where it came from, for
// the manager's start-up log.
type goMemoryLimit struct {
	// source is "cgroup" (a ratio of the container's memory limit), "GOMEMLIMIT" (set in the
	// environment, which the runtime read as it started), "AUTOMEMLIMIT=off", or "none".
	source string
	// container is the container's memory limit in bytes, when source is "cgroup".
	container uint64
	// limit is the runtime's soft memory limit in bytes; math.MaxInt64 is none.
	limit int64
	// reason says why source is "none".
	reason string
}

// setGoMemoryLimit sets the Go runtime's soft memory limit to ratio of the container's memory
// limit, which provider reads (memlimit.FromCgroup), so that the garbage collector works
// harder as the heap nears the limit instead of letting the kernel kill the container. A
// GOMEMLIMIT in the environment wins, and so does AUTOMEMLIMIT (automemlimit's own variable:
// a ratio, or off). A process without a limit (none in its cgroup, or not on Linux) is left
// without one; any other error leaves the runtime's limit as it was.
func setGoMemoryLimit(ratio float64, provider memlimit.Provider) (goMemoryLimit, error) {
	var (
		read      bool
		container uint64
		readErr   error
	)
	limit, err := memlimit.Set(memlimit.WithRatio(ratio), memlimit.WithProvider(func() (uint64, error) {
		read = true
		container, readErr = provider()
		return container, readErr
	}))
	switch {
	case !read && err == nil:
		// memlimit.Set reads no limit when the environment sets one or turns it off.
		if os.Getenv("GOMEMLIMIT") != "" {
			return goMemoryLimit{source: "GOMEMLIMIT", limit: limit}, nil
		}
		return goMemoryLimit{source: "AUTOMEMLIMIT=off", limit: limit}, nil
	case errors.Is(readErr, memlimit.ErrNoLimit):
		return goMemoryLimit{source: sourceNone, limit: limit, reason: "the container has no memory limit"}, nil
	case errors.Is(readErr, memlimit.ErrCgroupsNotSupported), errors.Is(readErr, memlimit.ErrNoCgroup):
		return goMemoryLimit{source: sourceNone, limit: limit, reason: readErr.Error()}, nil
	case err != nil:
		return goMemoryLimit{}, err
	}
	return goMemoryLimit{source: "cgroup", container: container, limit: limit}, nil
}

// logValues are the key-value pairs of the start-up log line.
func (l goMemoryLimit) logValues() []any {
	kv := []any{"goMemoryLimit", "none", "source", l.source}
	if l.limit != math.MaxInt64 {
		kv[1] = mebibytes(uint64(l.limit))
	}
	if l.source == "cgroup" {
		kv = append(kv, "containerMemoryLimit", mebibytes(l.container))
	}
	if l.reason != "" {
		kv = append(kv, "reason", l.reason)
	}
	return kv
}

// mebibytes formats n bytes as 384MiB, or 345.6MiB when not a whole number of MiB.
func mebibytes(n uint64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
}
