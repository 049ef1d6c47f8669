package sources

import (
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// The memo answers for the version it parsed, and holds no more than maxMemoIDs, the
// least recently used ConfigMap going first.
func TestMemo(t *testing.T) {
	m := newMemo()
	m.put("ns/a", "uid-a", "1", "ids", parsed{ids: []string{"u1", "u2"}, weight: 6})
	m.put("ns/a", "uid-a", "1", "empty", parsed{})
	if p, ok := m.get("ns/a", "uid-a", "1", "ids"); !ok || !slices.Equal(p.ids, []string{"u1", "u2"}) || p.weight != 6 {
		t.Fatalf("get = %+v, %v", p, ok)
	}
	for _, miss := range []struct{ uid, version, key string }{{"uid-a", "2", "ids"}, {"uid-b", "1", "ids"}, {"uid-a", "1", "other"}} {
		if _, ok := m.get("ns/a", types.UID(miss.uid), miss.version, miss.key); ok {
			t.Errorf("%+v answered from another version or key", miss)
		}
	}
	m.put("ns/a", "uid-a", "2", "ids", parsed{ids: []string{"u3"}}) // a new version replaces the old
	if _, ok := m.get("ns/a", "uid-a", "1", "empty"); ok || m.ids != 2 {
		t.Fatalf("the old version kept (%d IDs)", m.ids)
	}

	for i := range maxMemoIDs { // empty keys count too: they cannot pile up
		m.put(fmt.Sprintf("ns/empty-%d", i), "u", "1", "ids", parsed{})
	}
	if m.ids > maxMemoIDs {
		t.Fatalf("%d kept for empty keys, over the budget", m.ids)
	}
	big := make([]string, maxMemoIDs/4)
	for i := range 10 {
		m.put(fmt.Sprintf("ns/big-%d", i), "u", "1", "ids", parsed{ids: big})
		if m.ids > maxMemoIDs {
			t.Fatalf("%d IDs kept, over the budget", m.ids)
		}
	}
	if _, ok := m.get("ns/big-9", "u", "1", "ids"); !ok {
		t.Fatal("the newest entry went")
	}
	if _, ok := m.get("ns/big-0", "u", "1", "ids"); ok {
		t.Fatal("the oldest entry kept past the budget")
	}
	m.put("ns/huge", "u", "1", "ids", parsed{ids: make([]string, maxMemoIDs+1)})
	if _, ok := m.get("ns/huge", "u", "1", "ids"); ok || m.ids > maxMemoIDs {
		t.Fatal("an entry over the whole budget kept")
	}
}
