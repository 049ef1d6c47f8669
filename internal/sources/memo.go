package sources

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/lru"
)

// maxMemoIDs bounds the IDs memo keeps, all sources together (each key kept counts one
// more, so that empty keys are bounded too): some 20 MiB of IDs of 24 characters (40 of
// 64), two Segments of the most members and a half. A tenant naming many large sources
// makes the manager read them again more often, but never keep more.
const maxMemoIDs = 300_000

// memo keeps what the membersFrom keys of ConfigMaps were parsed into, by ConfigMap and
// version, the least recently used ConfigMap going first once maxMemoIDs is reached.
type memo struct {
	mu    sync.Mutex
	cache *lru.Cache
	ids   int
}

// memoEntry is what memo keeps of one ConfigMap version.
type memoEntry struct {
	uid     types.UID
	version string
	keys    map[string]parsed
	ids     int
}

// parsed is what one key holds: its IDs, and their weight (see parse).
type parsed struct {
	ids    []string
	weight int64
}

func newMemo() *memo {
	m := &memo{}
	m.cache = lru.NewWithEvictionFunc(0, func(_ lru.Key, v any) { m.ids -= v.(*memoEntry).ids })
	return m
}

// get returns what key of the ConfigMap cm (namespace/name) at uid and version was parsed
// into, if it is kept.
func (m *memo) get(cm string, uid types.UID, version, key string) (parsed, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.cache.Get(cm)
	if !ok {
		return parsed{}, false
	}
	e := v.(*memoEntry)
	if e.uid != uid || e.version != version {
		return parsed{}, false
	}
	p, ok := e.keys[key]
	return p, ok
}

// put keeps what key of cm at uid and version was parsed into.
func (m *memo) put(cm string, uid types.UID, version, key string, p parsed) {
	if len(p.ids) >= maxMemoIDs { // it would push every other out, and itself
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := &memoEntry{uid: uid, version: version, keys: map[string]parsed{}}
	if v, ok := m.cache.Get(cm); ok {
		if old := v.(*memoEntry); old.uid == uid && old.version == version {
			e = old // added back below, with its new size
		}
		m.cache.Remove(cm) // an older version goes
	}
	if old, ok := e.keys[key]; ok {
		e.ids -= 1 + len(old.ids)
	}
	e.keys[key] = p
	e.ids += 1 + len(p.ids) // a key kept counts as one ID more: empty keys too
	m.cache.Add(cm, e)
	m.ids += e.ids
	for m.ids > maxMemoIDs {
		m.cache.RemoveOldest()
	}
}
