package ledger_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/segment-operator/segment-operator/internal/ledger"
)

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%06d", i)
	}
	return out
}

func TestMissingAndNotIn(t *testing.T) {
	for _, tc := range []struct {
		name           string
		added, desired []string
		missing        []string
		notIn          int
	}{
		{"empty", nil, nil, nil, 0},
		{"all new", nil, []string{"b", "a"}, []string{"b", "a"}, 0},
		{"nothing changed", []string{"a", "b"}, []string{"b", "a"}, nil, 0},
		{"one more", []string{"a", "b"}, []string{"a", "b", "c"}, []string{"c"}, 0},
		{"one dropped", []string{"a", "b"}, []string{"a"}, nil, 1},
		{"replaced", []string{"a", "b"}, []string{"c", "d"}, []string{"c", "d"}, 2},
		{"duplicates in desired count once", []string{"a"}, []string{"c", "c", "a", "a"}, []string{"c"}, 0},
		{"duplicates added count once", []string{"a", "a", "b"}, []string{}, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := ledger.New(tc.added...)
			if got := l.Missing(tc.desired); !slices.Equal(got, tc.missing) {
				t.Errorf("Missing = %q, want %q", got, tc.missing)
			}
			if got := l.NotIn(tc.desired); got != tc.notIn {
				t.Errorf("NotIn = %d, want %d", got, tc.notIn)
			}
		})
	}
}

// A ledger of 100,000 members encodes in about 7 bytes each and reads back the same; adding
// 1,000 to it leaves exactly those to add and none to remove.
func TestRoundTripAtScale(t *testing.T) {
	l := ledger.New(ids(100_000)...)
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if perMember := float64(len(b)) / 100_000; perMember > 7.5 {
		t.Errorf("%.2f bytes a member", perMember)
	}
	back := &ledger.Ledger{}
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	desired := ids(101_000)
	if got := back.Missing(desired); len(got) != 1000 || got[0] != "u100000" {
		t.Fatalf("missing %d (first %q), want the 1,000 new", len(got), got[0])
	}
	if back.NotIn(desired) != 0 || back.Len() != 100_000 || !back.Has("u099999") || back.Has("u100000") {
		t.Fatal("the ledger read back differs")
	}
	empty, _ := (&ledger.Ledger{}).MarshalBinary()
	if err := back.UnmarshalBinary(empty); err != nil || back.Len() != 0 {
		t.Fatalf("an empty ledger: %v", err)
	}
}

// Anything MarshalBinary did not make is refused, not read as some other set.
func TestUnmarshalRefusesWhatItDidNotWrite(t *testing.T) {
	good, _ := ledger.New("a", "b", "c").MarshalBinary()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"nothing", nil},
		{"unknown version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(slices.Clone(good), 0)},
		{"count beyond the bytes", []byte{1, 200, 1}},
		{"a repeated digest (gap 0)", []byte{1, 2, 5, 0}},
		{"overflow", append([]byte{1, 2}, append(bigVarint(), bigVarint()...)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := ledger.New("kept")
			if err := l.UnmarshalBinary(tc.b); !errors.Is(err, ledger.ErrCorrupt) {
				t.Fatalf("err = %v", err)
			}
			if !l.Has("kept") {
				t.Fatal("a refused encoding changed the ledger")
			}
		})
	}
}

// bigVarint encodes 2^63, twice of which overflow a uint64.
func bigVarint() []byte { return []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01} }

func BenchmarkMissing100k(b *testing.B) {
	l := ledger.New(ids(100_000)...)
	desired := ids(101_000)
	b.ReportAllocs()
	for b.Loop() {
		if len(l.Missing(desired)) != 1000 {
			b.Fatal("wrong")
		}
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name     string
		a, b     []string
		wantLen  int
		wantHave []string
	}{
		{"disjoint", []string{"u1", "u2"}, []string{"u3"}, 3, []string{"u1", "u2", "u3"}},
		{"overlapping", []string{"u1", "u2"}, []string{"u2", "u3"}, 3, []string{"u1", "u3"}},
		{"into empty", nil, []string{"u1"}, 1, []string{"u1"}},
		{"nothing to merge", []string{"u1"}, nil, 1, []string{"u1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, o := ledger.New(tc.a...), ledger.New(tc.b...)
			l.Merge(o)
			if l.Len() != tc.wantLen {
				t.Errorf("Len = %d, want %d", l.Len(), tc.wantLen)
			}
			for _, id := range tc.wantHave {
				if !l.Has(id) {
					t.Errorf("missing %s", id)
				}
			}
			if o.Len() != ledger.New(tc.b...).Len() {
				t.Errorf("the merged ledger changed")
			}
		})
	}
}
