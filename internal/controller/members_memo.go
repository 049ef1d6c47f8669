package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/lru"
)

// maxMemoIDs bounds the IDs sourceMemo keeps, all sources together (each key kept counts
// one more, so that errors and empty keys are bounded too): some 16 MiB, three Segments of
// the most members. A tenant naming many large sources makes the manager read them again
// more often, but never keep more.
const maxMemoIDs = 300_000

// sourceMemo keeps what the membersFrom keys of ConfigMaps were parsed into, by ConfigMap
// and version, the least recently used ConfigMap going first once maxMemoIDs is reached.
// A parse error is kept too: a bad source is not read again until it changes.
type sourceMemo struct {
	mu    sync.Mutex
	cache *lru.Cache
	ids   int
}

// memoEntry is what sourceMemo keeps of one ConfigMap version.
type memoEntry struct {
	uid     types.UID
	version string
	keys    map[string]memoKey
	ids     int
}

type memoKey struct {
	ids []string
	err error
}

func newSourceMemo() *sourceMemo {
	m := &sourceMemo{}
	m.cache = lru.NewWithEvictionFunc(0, func(_ lru.Key, v any) { m.ids -= v.(*memoEntry).ids })
	return m
}

// get returns what key of the ConfigMap cm (namespace/name) at uid and version was parsed
// into, if it is kept.
func (m *sourceMemo) get(cm string, uid types.UID, version, key string) ([]string, error, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.cache.Get(cm)
	if !ok {
		return nil, nil, false
	}
	e := v.(*memoEntry)
	if e.uid != uid || e.version != version {
		return nil, nil, false
	}
	k, ok := e.keys[key]
	return k.ids, k.err, ok
}

// put keeps what key of cm at uid and version was parsed into.
func (m *sourceMemo) put(cm string, uid types.UID, version, key string, ids []string, err error) {
	if len(ids) >= maxMemoIDs {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := &memoEntry{uid: uid, version: version, keys: map[string]memoKey{}}
	if v, ok := m.cache.Get(cm); ok {
		if old := v.(*memoEntry); old.uid == uid && old.version == version {
			e = old // added back below, with its new size
		}
		m.cache.Remove(cm) // an older version goes
	}
	if old, ok := e.keys[key]; ok {
		e.ids -= 1 + len(old.ids)
	}
	e.keys[key] = memoKey{ids: ids, err: err}
	e.ids += 1 + len(ids) // a key kept counts as one ID more: errors and empty keys too
	m.cache.Add(cm, e)
	m.ids += e.ids
	for m.ids > maxMemoIDs {
		m.cache.RemoveOldest()
	}
}
