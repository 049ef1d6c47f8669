package sources

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// Default budgets (see Limits).
const (
	// DefaultSegmentBytes holds 120,000 IDs of 64 characters, with their line ends and
	// idCost each.
	DefaultSegmentBytes = 16 << 20
	// DefaultParseBytes lets two Segments of the largest sources be read at once: the
	// default of ParseBytes is twice SegmentBytes.
	DefaultParseBytes = 2 * DefaultSegmentBytes
)

const (
	// readTimeout bounds one read of a ConfigMap shared by many reconciles.
	readTimeout = 30 * time.Second
	// maxRefusals bounds the Segments remembered as refused, and maxOutcomes the keys
	// remembered as refused or as too heavy: a few MB each. One forgotten is read again
	// once, within the budgets.
	maxRefusals = 10_000
	maxOutcomes = 10_000
	// maxKeyWeight is the most one key may weigh: MaxKeyBytes, and as many IDs as a
	// Segment may have.
	maxKeyWeight = MaxKeyBytes + idCost*usersv1alpha1.MaxMembers
)

// Limits are the budgets of a Reader, in bytes of weight: the bytes of the sources once
// decompressed, and idCost more for each ID (what the manager holds of it besides its
// text). Zero fields take the defaults.
type Limits struct {
	// SegmentBytes is the most one Segment's sources may weigh in all.
	SegmentBytes int64
	// ParseBytes is the most the sources being read and held at once may weigh, all
	// Segments together. At least SegmentBytes.
	ParseBytes int64
}

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.SegmentBytes <= 0 {
		l.SegmentBytes = DefaultSegmentBytes
	}
	if l.ParseBytes <= 0 {
		l.ParseBytes = 2 * l.SegmentBytes
	}
	return l
}

// Validate says why l cannot be used, or returns nil.
func (l Limits) Validate() error {
	if l.ParseBytes < l.SegmentBytes {
		return fmt.Errorf("the bytes of member sources read at once (%d) must be at least what one Segment may read (%d)",
			l.ParseBytes, l.SegmentBytes)
	}
	return nil
}

// Error is a Segment's spec.membersFrom that cannot be used until it or a ConfigMap it
// names changes: a source missing or unlabelled, without the key, with a line that is not
// an ID, or over a budget.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

func refuse(format string, args ...any) *Error { return &Error{msg: fmt.Sprintf(format, args...)} }

// Reader reads Segments' members from their sources within its Limits. It is safe for
// concurrent use.
type Reader struct {
	cache  client.Reader // ConfigMap metadata: the cache holds no more
	api    client.Reader // ConfigMaps whole, uncached
	limits Limits

	parsing *semaphore.Weighted // weight of sources being read and held, all Segments together
	reads   singleflight.Group  // one read of a ConfigMap version for concurrent readers
	memo    *memo

	mu       sync.Mutex
	refusals *lru.Cache // Segment UID -> refusal
	outcomes *lru.Cache // key version (see source.id) -> outcome
}

// refusal is a Segment's sources refused, and the versions they were refused at.
type refusal struct {
	versions [sha256.Size]byte
	err      *Error
}

// outcome is what reading a key version came to, without its IDs: refused on its own
// (err), or heavier than a limit it was read with (over). So that the Segments naming it
// do not read it again each, one after another.
type outcome struct {
	err  *Error
	over int64
}

// NewReader returns a Reader that reads ConfigMaps' metadata from cache and their data
// from api (uncached: the cache holds only metadata of ConfigMaps, which any editor may
// label in numbers).
func NewReader(cache, api client.Reader, limits Limits) *Reader {
	limits = limits.WithDefaults()
	limits.ParseBytes = max(limits.ParseBytes, limits.SegmentBytes) // a share never waits for more than there is
	return &Reader{cache: cache, api: api, limits: limits, parsing: semaphore.NewWeighted(limits.ParseBytes),
		memo: newMemo(), refusals: lru.New(maxRefusals), outcomes: lru.New(maxOutcomes)}
}

// source is one spec.membersFrom entry and the version of its ConfigMap.
type source struct {
	usersv1alpha1.MembersSource
	index   int    // in spec.membersFrom, from 1
	cm      string // namespace/name
	uid     types.UID
	version string
}

// id names the key's version.
func (s source) id() string { return s.cm + "@" + string(s.uid) + "/" + s.version + "#" + s.Key }

// Members returns the Segment's members: spec.members and the IDs of every spec.membersFrom
// source together, sorted, each once. An *Error says why the sources cannot be used (then
// no member is returned: adding only some would be a partial truth no later fix could take
// back, as the API removes none); any other error (the API server's) is worth retrying.
// It may wait for the manager's budget of sources read at once (Limits.ParseBytes).
func (r *Reader) Members(ctx context.Context, seg *usersv1alpha1.Segment) ([]string, error) {
	if len(seg.Spec.MembersFrom) == 0 {
		return seg.Spec.Members, nil // sorted and unique already (listType=set)
	}
	srcs := make([]source, 0, len(seg.Spec.MembersFrom))
	named := sets.New[usersv1alpha1.MembersSource]()
	for i, from := range seg.Spec.MembersFrom {
		if named.Has(from) {
			continue // read once: a key named again adds nothing
		}
		named.Insert(from)
		src, err := r.source(ctx, seg.Namespace, from)
		if err != nil {
			return nil, err
		}
		src.index = i + 1
		srcs = append(srcs, src)
	}
	versions := fingerprint(seg.Generation, srcs)
	if err := r.refused(seg.UID, versions); err != nil {
		return nil, err
	}
	// The keys in the memo are held only once the share is taken (none is kept alive by a
	// Segment waiting), and then taken again if one went meanwhile: one evicted is read
	// again within the share.
	var (
		share int64
		known []*parsed
	)
	for need := r.share(r.known(srcs)); share < need; need = r.share(known) {
		if share > 0 {
			r.parsing.Release(share)
		}
		if err := r.parsing.Acquire(ctx, need); err != nil {
			return nil, fmt.Errorf("wait to read spec.membersFrom: %w", err)
		}
		share, known = need, r.known(srcs)
	}
	defer r.parsing.Release(share)
	members, read, err := r.read(ctx, seg, srcs, known)
	if bad := (*Error)(nil); errors.As(err, &bad) {
		r.mu.Lock()
		r.refusals.Add(seg.UID, refusal{versions: versions, err: bad})
		r.mu.Unlock()
		return nil, err
	} else if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.refusals.Remove(seg.UID)
	r.mu.Unlock()
	if ids := idsIn(read); ids > maxMemoIDs/2 {
		return members, nil // it would push out most of what serves the others: it reads its own again
	}
	for _, k := range read {
		r.memo.put(k.cm, k.uid, k.version, k.Key, k.parsed)
	}
	return members, nil
}

// known returns what the memo keeps of srcs' keys (nil: not kept).
func (r *Reader) known(srcs []source) []*parsed {
	known := make([]*parsed, len(srcs))
	for i, src := range srcs {
		if p, ok := r.memo.get(src.cm, src.uid, src.version, src.Key); ok {
			known[i] = &p
		}
	}
	return known
}

// keyRead is a key read from the API server, to keep in the memo once the Segment's
// sources are accepted.
type keyRead struct {
	source
	parsed
}

// read unions spec.members and the keys of srcs, in order, stopping at the first key that
// takes the Segment past a budget. known are the keys of srcs in the memo when the share
// was taken (nil: not).
func (r *Reader) read(ctx context.Context, seg *usersv1alpha1.Segment, srcs []source, known []*parsed) ([]string, []keyRead, error) {
	members := sets.New(seg.Spec.Members...)
	var (
		weight int64
		read   []keyRead
	)
	for i, src := range srcs {
		overBudget := func() error {
			return refuse("spec.membersFrom weighs more than %d bytes in all, counting %d bytes for each ID besides its text "+
				"(reading stopped at ConfigMap %q, key %q, source %d of %d); a Segment's may weigh at most %d "+
				"(the manager's --max-member-source-bytes-per-segment)", r.limits.SegmentBytes, idCost,
				src.ConfigMap, src.Key, src.index, len(seg.Spec.MembersFrom), r.limits.SegmentBytes)
		}
		var p parsed
		if known[i] != nil {
			p = *known[i]
		} else if kept, ok := r.memo.get(src.cm, src.uid, src.version, src.Key); ok {
			p = kept // read by another Segment while this one waited: within its share
		} else {
			left := r.limits.SegmentBytes - weight
			if o, ok := r.outcome(src); ok && o.err != nil {
				return nil, nil, o.err
			} else if ok && o.over >= left {
				return nil, nil, overBudget()
			}
			k, err := r.readKey(ctx, seg.Namespace, src, left)
			var bad *Error
			switch {
			case errors.Is(err, errOverBudget):
				r.remember(src, outcome{over: left})
				return nil, nil, overBudget()
			case errors.As(err, &bad):
				r.remember(src, outcome{err: bad})
				return nil, nil, err
			case err != nil:
				return nil, nil, err
			}
			p = k.parsed
			read = append(read, k)
		}
		if weight += p.weight; weight > r.limits.SegmentBytes {
			return nil, nil, overBudget()
		}
		members.Insert(p.ids...)
		if members.Len() > usersv1alpha1.MaxMembers {
			return nil, nil, refuse("spec.members and spec.membersFrom name more than %d members together (reading stopped at "+
				"ConfigMap %q, key %q, source %d of %d); a Segment may have at most %d", usersv1alpha1.MaxMembers,
				src.ConfigMap, src.Key, src.index, len(seg.Spec.MembersFrom), usersv1alpha1.MaxMembers)
		}
	}
	return sets.List(members), read, nil
}

func idsIn(read []keyRead) int {
	n := 0
	for _, k := range read {
		n += len(k.ids)
	}
	return n
}

// outcome returns what reading src's key version came to before, if it is remembered.
func (r *Reader) outcome(src source) (outcome, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.outcomes.Get(src.id())
	if !ok {
		return outcome{}, false
	}
	return v.(outcome), true
}

func (r *Reader) remember(src source, o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes.Add(src.id(), o)
}

// source returns the version of the ConfigMap from names, from the cache. One missing or
// unlabelled is an *Error: only labelled ConfigMaps of the Segment's namespace are read.
func (r *Reader) source(ctx context.Context, ns string, from usersv1alpha1.MembersSource) (source, error) {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	err := r.cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: from.ConfigMap}, meta)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && meta.Labels[usersv1alpha1.MembersLabel] != "true"):
		return source{}, notFound(ns, from.ConfigMap)
	case err != nil:
		return source{}, fmt.Errorf("read ConfigMap %q: %w", from.ConfigMap, err)
	}
	return source{MembersSource: from, cm: ns + "/" + from.ConfigMap, uid: meta.UID, version: meta.ResourceVersion}, nil
}

func notFound(ns, name string) *Error {
	return refuse("ConfigMap %q named by spec.membersFrom not found in namespace %q (it must exist and carry the label %s=true)",
		name, ns, usersv1alpha1.MembersLabel)
}

// readKey reads one key of src from the API server, stopping past limit of weight. The
// ConfigMap is read once for concurrent readers that saw the same version: one that saw a
// newer version than a read under way began with must not take that read's older answer.
// What it returns is of the version read, which may be newer than src's. An error of the
// key itself is an *Error; past limit, it wraps errOverBudget.
func (r *Reader) readKey(ctx context.Context, ns string, src source, limit int64) (keyRead, error) {
	v, err, _ := r.reads.Do(src.cm+"@"+string(src.uid)+"/"+src.version, func() (any, error) {
		// The read serves every reader waiting for it: one reader's cancellation must not
		// fail the others (as an account's shared listing, remote.Observations.Refresh).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		cm := &corev1.ConfigMap{}
		return cm, r.api.Get(rctx, client.ObjectKey{Namespace: ns, Name: src.ConfigMap}, cm)
	})
	cm := v.(*corev1.ConfigMap)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && cm.Labels[usersv1alpha1.MembersLabel] != "true"):
		return keyRead{}, notFound(ns, src.ConfigMap)
	case err != nil:
		return keyRead{}, fmt.Errorf("read ConfigMap %q: %w", src.ConfigMap, err)
	}
	ids, weight, err := parse(cm, src.Key, limit)
	switch {
	case errors.Is(err, errOverBudget):
		return keyRead{}, err // the caller says which budget
	case err != nil:
		return keyRead{}, &Error{msg: err.Error()}
	}
	read := src
	read.uid, read.version = cm.UID, cm.ResourceVersion
	return keyRead{source: read, parsed: parsed{ids: ids, weight: weight}}, nil
}

// share is the part of the manager's budget of sources read at once that a Segment's
// sources take: the weight of those known (in the memo), maxKeyWeight for each other, at
// most what a Segment may read.
func (r *Reader) share(known []*parsed) int64 {
	var n int64
	for _, p := range known {
		if p != nil {
			n += p.weight
		} else {
			n += maxKeyWeight
		}
	}
	return max(1, min(n, r.limits.SegmentBytes))
}

// refused returns the error the Segment's sources were refused with, if they were at
// these versions.
func (r *Reader) refused(uid types.UID, versions [sha256.Size]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.refusals.Get(uid); ok && v.(refusal).versions == versions {
		return v.(refusal).err
	}
	return nil
}

// fingerprint digests what a Segment's members are read from: its generation (spec.members,
// the sources named) and each ConfigMap's identity and version.
func fingerprint(generation int64, srcs []source) [sha256.Size]byte {
	h := sha256.New()
	h.Write(strconv.AppendInt(nil, generation, 10))
	for _, src := range srcs {
		for _, s := range []string{src.cm, src.Key, string(src.uid), src.version} {
			h.Write([]byte{0})
			h.Write([]byte(s))
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
