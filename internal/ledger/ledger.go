package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// version is the first byte of an encoded Ledger.
const version = 1

// Ledger is a set of member IDs, kept as their digests. The zero value is empty.
type Ledger struct {
	sums []uint64 // sorted, unique
}

// Sum is the digest a Ledger keeps of id.
func Sum(id string) uint64 {
	h := sha256.Sum256([]byte(id))
	return binary.BigEndian.Uint64(h[:8])
}

// New returns a Ledger holding ids.
func New(ids ...string) *Ledger {
	l := &Ledger{}
	l.Add(ids...)
	return l
}

// Clone returns a copy of the Ledger.
func (l *Ledger) Clone() *Ledger { return &Ledger{sums: slices.Clone(l.sums)} }

// Len is how many distinct members the Ledger holds.
func (l *Ledger) Len() int { return len(l.sums) }

// Has reports whether id is in the Ledger.
func (l *Ledger) Has(id string) bool {
	_, ok := slices.BinarySearch(l.sums, Sum(id))
	return ok
}

// Add puts ids in the Ledger.
func (l *Ledger) Add(ids ...string) {
	if len(ids) == 0 {
		return
	}
	added := make([]uint64, 0, len(ids))
	for _, id := range ids {
		added = append(added, Sum(id))
	}
	slices.Sort(added)
	l.sums = merge(l.sums, slices.Compact(added))
}

// Merge puts the members of o in the Ledger.
func (l *Ledger) Merge(o *Ledger) { l.sums = merge(l.sums, o.sums) }

// merge returns the sorted union of two sorted, unique slices.
func merge(a, b []uint64) []uint64 {
	out := make([]uint64, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0] < b[0]:
			out, a = append(out, a[0]), a[1:]
		case a[0] > b[0]:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// Missing returns the IDs of desired not in the Ledger (what is left to add), in the order
// of desired, each once.
func (l *Ledger) Missing(desired []string) []string {
	var out []string
	seen := make(map[uint64]struct{}, len(desired))
	for _, id := range desired {
		s := Sum(id)
		if _, dup := seen[s]; dup {
			continue
		}
		seen[s] = struct{}{}
		if _, ok := slices.BinarySearch(l.sums, s); !ok {
			out = append(out, id)
		}
	}
	return out
}

// NotIn counts the members of the Ledger that are not in desired: those added once and
// since dropped from the desired set, which the API cannot remove.
func (l *Ledger) NotIn(desired []string) int {
	want := make([]uint64, 0, len(desired))
	for _, id := range desired {
		want = append(want, Sum(id))
	}
	slices.Sort(want)
	want = slices.Compact(want)
	n := 0
	for _, s := range l.sums {
		if _, ok := slices.BinarySearch(want, s); !ok {
			n++
		}
	}
	return n
}

// MarshalBinary encodes the Ledger: a version byte, the count, then the first digest and
// each gap to the next as unsigned varints.
func (l *Ledger) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, 1+binary.MaxVarintLen64*(1+len(l.sums)))
	out = append(out, version)
	out = binary.AppendUvarint(out, uint64(len(l.sums)))
	var prev uint64
	for _, s := range l.sums {
		out = binary.AppendUvarint(out, s-prev)
		prev = s
	}
	return out, nil
}

// ErrCorrupt is returned for an encoding MarshalBinary did not make.
var ErrCorrupt = errors.New("ledger: corrupt encoding")

// UnmarshalBinary decodes what MarshalBinary encoded, refusing anything else: a ledger
// read back wrong would have the operator add members again, or miss some.
func (l *Ledger) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != version {
		return fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) { // each digest takes at least a byte
		return fmt.Errorf("%w: bad count", ErrCorrupt)
	}
	b = b[k:]
	sums := make([]uint64, 0, n)
	var prev uint64
	for i := range n {
		gap, k := binary.Uvarint(b)
		if k <= 0 || (i > 0 && gap == 0) || prev+gap < prev {
			return fmt.Errorf("%w: bad digest %d", ErrCorrupt, i)
		}
		b = b[k:]
		prev += gap
		sums = append(sums, prev)
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d bytes after the last digest", ErrCorrupt, len(b))
	}
	l.sums = sums
	return nil
}
