package controller

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// The memo answers for the version it parsed, keeps a parse error as well as IDs, and
// holds no more than maxMemoIDs, the least recently used ConfigMap going first.
func TestSourceMemo(t *testing.T) {
	m := newSourceMemo()
	bad := errors.New("line 3")
	m.put("ns/a", "uid-a", "1", "ids", []string{"u1", "u2"}, nil)
	m.put("ns/a", "uid-a", "1", "broken", nil, bad)
	if ids, err, ok := m.get("ns/a", "uid-a", "1", "ids"); !ok || err != nil || !slices.Equal(ids, []string{"u1", "u2"}) {
		t.Fatalf("get = %q, %v, %v", ids, err, ok)
	}
	if _, err, ok := m.get("ns/a", "uid-a", "1", "broken"); !ok || err != bad {
		t.Fatalf("a parse error not kept: %v %v", err, ok)
	}
	for _, miss := range []struct{ uid, version, key string }{{"uid-a", "2", "ids"}, {"uid-b", "1", "ids"}, {"uid-a", "1", "other"}} {
		if _, _, ok := m.get("ns/a", types.UID(miss.uid), miss.version, miss.key); ok {
			t.Errorf("%+v answered from another version or key", miss)
		}
	}
	m.put("ns/a", "uid-a", "2", "ids", []string{"u3"}, nil) // a new version replaces the old
	if _, _, ok := m.get("ns/a", "uid-a", "1", "broken"); ok || m.ids != 2 {
		t.Fatalf("the old version kept (%d IDs)", m.ids)
	}

	for i := range maxMemoIDs { // errors count too: they cannot pile up
		m.put(fmt.Sprintf("ns/bad-%d", i), "u", "1", "ids", nil, bad)
	}
	if m.ids > maxMemoIDs {
		t.Fatalf("%d kept for errors, over the budget", m.ids)
	}
	big := make([]string, maxMemoIDs/4)
	for i := range 10 {
		m.put(fmt.Sprintf("ns/big-%d", i), "u", "1", "ids", big, nil)
		if m.ids > maxMemoIDs {
			t.Fatalf("%d IDs kept, over the budget", m.ids)
		}
	}
	if _, _, ok := m.get("ns/big-9", "u", "1", "ids"); !ok {
		t.Fatal("the newest entry went")
	}
	if _, _, ok := m.get("ns/big-0", "u", "1", "ids"); ok {
		t.Fatal("the oldest entry kept past the budget")
	}
	m.put("ns/huge", "u", "1", "ids", make([]string, maxMemoIDs+1), nil)
	if _, _, ok := m.get("ns/huge", "u", "1", "ids"); ok || m.ids > maxMemoIDs {
		t.Fatal("an entry over the whole budget kept")
	}
}
