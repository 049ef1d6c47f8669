package memberrecord

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/quota"
)

const (
	// inlineRecordBytes is the largest record kept in status: about 400 members.
	inlineRecordBytes = 3000
	// unlostMembers is the most members whose record is surely kept in status (at 10 bytes
	// a digest, more than a digest ever takes): a fill of no more never looks for a
	// ConfigMap that status does not name.
	unlostMembers = inlineRecordBytes / 10
	// maxRecordBytes is the largest record a ConfigMap holds (the API server takes up to
	// 1 MiB of data): about 140,000 members.
	maxRecordBytes = 1_000_000
	// recordKey is the binaryData key of a record ConfigMap.
	recordKey = "digests"
	// recordSegmentAnnotation names the remote segment a record ConfigMap records.
	recordSegmentAnnotation = "users.chatbot.com/remote-segment"
	// recordOwnerAnnotation names the Segment (namespace/name) a record ConfigMap is of.
	recordOwnerAnnotation = "users.chatbot.com/segment"
	// recordBytesAnnotation is the size of a record ConfigMap's record, which its
	// namespace is charged (see quota), so that the charges are known from its metadata.
	recordBytesAnnotation = "users.chatbot.com/record-bytes"
	// DefaultBytesPerNamespace is the default bound on the bytes of the records of a
	// namespace's Segments in the manager's namespace: about 2,300,000 members recorded, a
	// hundred Segments of 20,000 members.
	DefaultBytesPerNamespace = 16 << 20
	// memoDigests bounds the digests of records kept in memory, all Segments together:
	// 16 MB, some 15 records of the largest size. Any Segment editor can make large
	// Segments; past the bound, records are read again from their ConfigMaps.
	memoDigests = 2_000_000
	// absentRecords bounds the Segments remembered to have no unnamed record (see unnamed):
	// a few MB; one forgotten costs one read.
	absentRecords = 100_000
)

// Records reads and writes Segments' member records. It is safe for concurrent use.
type Records struct {
	// namespace is the manager's own, where large records are kept.
	namespace string
	reader    client.Reader // uncached: the cache holds no record ConfigMap
	writer    client.Client // the manager's: writes, and reads the cache (Namespaces)

	mu sync.Mutex
	// memo keeps the records last read or written, by Segment UID, the least recently used
	// going first past memoDigests: this process is the only writer while it leads, and a
	// write on a stale version is refused (Conflict).
	memo    *lru.Cache
	digests int
	// absent holds the UIDs of Segments whose unnamed record was looked for and not found.
	absent *lru.Cache
	// quota charges each record ConfigMap to its Segment's namespace: no ResourceQuota of
	// the tenant's counts what it makes the manager keep in its own namespace.
	quota *quota.Quota
}

type recordMemo struct {
	resourceVersion string
	remoteID        string
	ledger          *ledger.Ledger
}

// New returns the records kept in namespace (the manager's own), read there through
// reader (uncached) and written through c (whose cache is read for Namespaces), each
// namespace's of them at most bytesPerNamespace (0: no bound).
func New(namespace string, reader client.Reader, c client.Client, bytesPerNamespace int64) *Records {
	m := &Records{namespace: namespace, reader: reader, writer: c}
	m.memo = lru.NewWithEvictionFunc(0, func(_ lru.Key, v any) { m.digests -= v.(recordMemo).ledger.Len() })
	m.absent = lru.New(absentRecords)
	m.quota = quota.New(bytesPerNamespace, m.charges)
	return m
}

// Loaded is a Segment's record as Load found it.
type Loaded struct {
	// Ledger is the record, a copy the caller may change.
	Ledger *ledger.Ledger
	// Migrated is true when the record is not in status yet (an earlier version's
	// status.addedMembers, or a ConfigMap whose status write was lost): then Save it.
	Migrated bool
	// Lost is true when a record ConfigMap status names is missing or records another
	// segment: the members are taken as not added (they are added again, which the API
	// takes as a no-op).
	Lost bool
}

// Load returns the Segment's record; desired are the members the Segment wants (see
// unnamed).
func (m *Records) Load(ctx context.Context, seg *usersv1alpha1.Segment, desired []string) (Loaded, error) {
	l, migrated, lost, err := m.load(ctx, seg, desired)
	return Loaded{Ledger: l, Migrated: migrated, Lost: lost}, err
}

// Release drops what the Segment of namespace ns and UID uid is charged for its record,
// deleted by the sweep, which knows of it only from the ConfigMap.
func (m *Records) Release(ns string, uid types.UID) { m.quota.Release(ns, uid) }

// load returns the Segment's record, a copy the caller may change; migrated is true when
// it is not in status yet (an earlier version's status.addedMembers, or a ConfigMap whose
// status write was lost): then save it. lost is true when a
// record ConfigMap status names is missing or records another segment: the members are
// taken as not added (they are added again, which the API takes as a no-op). desired are
// the members the Segment wants: see unnamed.
func (m *Records) load(ctx context.Context, seg *usersv1alpha1.Segment, desired []string) (l *ledger.Ledger, migrated, lost bool, err error) {
	rec := seg.Status.MemberRecord
	if rec == nil || rec.Added == 0 {
		// A record this process wrote to the Segment's ConfigMap whose status write was lost
		// (a conflict with an edit made during a long fill): it is the truth; save it again.
		if memo, ok := m.recall(seg.UID); ok && seg.OwnedID() != "" && memo.remoteID == seg.OwnedID() {
			return memo.ledger.Clone(), true, false, nil
		}
	}
	l, migrated, inStatus, err := InStatus(seg)
	if err != nil {
		return nil, false, false, err
	}
	if inStatus {
		if rec == nil || rec.ConfigMap == "" {
			if found, ok, err := m.unnamed(ctx, seg, l, desired); err != nil || ok {
				return found, ok, false, err
			}
		}
		return l, migrated, false, nil
	}
	memo, err := m.read(ctx, seg.UID, rec.ConfigMap)
	if apierrors.IsNotFound(err) {
		return ledger.New(), false, true, nil
	}
	if err != nil {
		return nil, false, false, err
	}
	if memo.remoteID != seg.OwnedID() {
		return ledger.New(), false, true, nil
	}
	return memo.ledger.Clone(), false, false, nil
}

// unnamed returns the record in the Segment's ConfigMap when status does not name it:
// written before a crash, or by a process whose status write was then lost, and not in
// this process' memory. Without it, the members it records would be sent again, and the
// ConfigMap outlive the Segment. It is looked for only when the fill would send members
// that inline, the record in status, does not have, and so many that a ConfigMap could be
// needed: never at steady state, never for a small Segment.
//
// One not found is remembered for the life of the process (in absent): a record this
// process writes it remembers, so an unnamed one can only predate it. A record found is
// merged with the one in status: both only grow, and either may hold members the other
// lacks (status's, added after a restart that did not look).
func (m *Records) unnamed(ctx context.Context, seg *usersv1alpha1.Segment, inline *ledger.Ledger, desired []string) (*ledger.Ledger, bool, error) {
	if m.namespace == "" || seg.OwnedID() == "" || len(desired) <= unlostMembers || m.knownAbsent(seg.UID) ||
		len(inline.Missing(desired)) == 0 {
		return nil, false, nil
	}
	memo, err := m.read(ctx, seg.UID, recordName(seg.UID))
	switch {
	case apierrors.IsNotFound(err):
		m.mu.Lock()
		m.absent.Add(seg.UID, nil)
		m.mu.Unlock()
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case memo.remoteID != seg.OwnedID():
		return nil, false, nil
	}
	l := memo.ledger.Clone()
	l.Merge(inline)
	return l, true, nil
}

// knownAbsent says whether this process found no record ConfigMap for the Segment, and wrote
// none since.
func (m *Records) knownAbsent(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.absent.Get(uid)
	return ok
}

// read returns the record ConfigMap's content, from memory if this process read or wrote
// it last.
func (m *Records) read(ctx context.Context, uid types.UID, name string) (recordMemo, error) {
	if memo, ok := m.recall(uid); ok {
		return memo, nil
	}
	cm := &corev1.ConfigMap{}
	if err := m.reader.Get(ctx, types.NamespacedName{Namespace: m.namespace, Name: name}, cm); err != nil {
		return recordMemo{}, err
	}
	l, remoteID, err := FromConfigMap(cm)
	if err != nil {
		return recordMemo{}, err
	}
	memo := recordMemo{resourceVersion: cm.ResourceVersion, remoteID: remoteID, ledger: l}
	m.remember(uid, memo)
	return memo, nil
}

// recall returns the record this process last read or wrote for the Segment, if it keeps one.
func (m *Records) recall(uid types.UID) (recordMemo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.memo.Get(uid)
	if !ok {
		return recordMemo{}, false
	}
	return v.(recordMemo), true
}

func (m *Records) remember(uid types.UID, memo recordMemo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.absent.Remove(uid)
	m.memo.Remove(uid) // its digests leave the count through the eviction function
	if memo.ledger.Len() > memoDigests {
		return
	}
	m.memo.Add(uid, memo)
	m.digests += memo.ledger.Len()
	for m.digests > memoDigests && m.memo.Len() > 0 {
		m.memo.RemoveOldest()
	}
}

// Save records l as the Segment's record: in status while small, else in its ConfigMap,
// written now (status is written later). Status then no longer holds addedMembers.
func (m *Records) Save(ctx context.Context, seg *usersv1alpha1.Segment, l *ledger.Ledger) error {
	b, _ := l.MarshalBinary()
	rec := &usersv1alpha1.MemberRecord{Added: int32(l.Len())}
	if old := seg.Status.MemberRecord; old != nil {
		rec.ConfigMap = old.ConfigMap // a ConfigMap made once stays until the Segment goes
		rec.Readded = old.Readded
	}
	if err := m.recordLimit(l.Len(), len(b)); err != nil {
		return err
	}
	if len(b) <= inlineRecordBytes {
		rec.Digests = b
	} else {
		rec.ConfigMap = recordName(seg.UID)
		if err := m.charge(ctx, seg, len(b)); err != nil {
			return err
		}
		if err := m.write(ctx, seg, rec.ConfigMap, b, l); err != nil {
			return err
		}
	}
	seg.Status.MemberRecord, seg.Status.AddedMembers = rec, nil
	return nil
}

// write stores a record in the Segment's ConfigMap, conditional on the version last seen.
func (m *Records) write(ctx context.Context, seg *usersv1alpha1.Segment, name string, b []byte, l *ledger.Ledger) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: m.namespace,
			Labels: map[string]string{usersv1alpha1.MemberRecordLabel: "true"},
			Annotations: map[string]string{recordSegmentAnnotation: seg.OwnedID(),
				recordOwnerAnnotation: seg.Namespace + "/" + seg.Name, recordBytesAnnotation: strconv.Itoa(len(b))}},
		BinaryData: map[string][]byte{recordKey: b},
	}
	memo, known := m.recall(seg.UID)
	var err error
	if known {
		cm.ResourceVersion = memo.resourceVersion
		err = m.writer.Update(ctx, cm)
	} else {
		err = m.writer.Create(ctx, cm)
		if apierrors.IsAlreadyExists(err) {
			existing := &corev1.ConfigMap{}
			if err = m.reader.Get(ctx, client.ObjectKeyFromObject(cm), existing); err == nil {
				cm.ResourceVersion = existing.ResourceVersion
				err = m.writer.Update(ctx, cm)
			}
		}
	}
	if apierrors.IsNotFound(err) { // the namespace, deleted since it was checked
		m.forget(seg.UID)
		return m.errNamespaceGone(l.Len())
	}
	if err != nil {
		m.forget(seg.UID) // read anew next time
		return fmt.Errorf("write the member record ConfigMap %s/%s: %w", m.namespace, name, err)
	}
	m.remember(seg.UID, recordMemo{resourceVersion: cm.ResourceVersion, remoteID: seg.OwnedID(), ledger: l.Clone()})
	return nil
}

// Handover forgets what this process remembers of the Segment's record, and no longer
// holds its charge as its own (it stands until a listing shows otherwise): another manager
// (shard) reconciles the Segment now, and writes its record. Should the Segment come back,
// its record is read again, not taken from a memory older than the other manager's writes.
func (m *Records) Handover(seg *usersv1alpha1.Segment) {
	m.forget(seg.UID)
	m.quota.Unpin(seg.Namespace, seg.UID)
}

func (m *Records) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.memo.Remove(uid)
	m.absent.Remove(uid)
}

// Drop deletes the Segment's record ConfigMap, named from its UID whatever status says: the
// Segment is going. When status names one or this process wrote one, an error keeps the
// Segment's finalizer. A Segment that owned a remote segment may also have one that status
// does not name (its status write lost before a restart): that delete is tried, but may
// fail (the sweep deletes what it leaves), so that a manager with no right to delete there
// never holds up a deletion. A Segment that owned no remote segment has no record.
func (m *Records) Drop(ctx context.Context, seg *usersv1alpha1.Segment) error {
	_, written := m.recall(seg.UID)
	m.forget(seg.UID)
	named := written || (seg.Status.MemberRecord != nil && seg.Status.MemberRecord.ConfigMap != "")
	if m.namespace == "" || (!named && seg.OwnedID() == "") {
		m.quota.Release(seg.Namespace, seg.UID) // a charge for members never sent, if any
		return nil
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: recordName(seg.UID), Namespace: m.namespace}}
	err := client.IgnoreNotFound(m.writer.Delete(ctx, cm))
	switch {
	case err == nil:
		m.quota.Release(seg.Namespace, seg.UID)
		return nil
	case named:
		return fmt.Errorf("delete the member record ConfigMap %s/%s: %w", m.namespace, cm.Name, err)
	default:
		logf.FromContext(ctx).Info("could not delete a member record ConfigMap that status does not name; the sweep will",
			"configMap", m.namespace+"/"+cm.Name, "error", err.Error())
		return nil // charged still: the sweep releases it with the ConfigMap
	}
}

// InStatus returns the Segment's record when status holds it: the digests themselves (even
// if status names a ConfigMap too: that one then records an earlier remote segment, which a
// Recreate left), an earlier version's addedMembers (migrated: not in memberRecord yet), or
// no record at all (empty). inStatus is false when the record is in the ConfigMap that
// status.memberRecord.configMap names, in the manager's namespace.
func InStatus(seg *usersv1alpha1.Segment) (l *ledger.Ledger, migrated, inStatus bool, err error) {
	rec := seg.Status.MemberRecord
	switch {
	case rec == nil && len(seg.Status.AddedMembers) > 0:
		return ledger.New(seg.Status.AddedMembers...), true, true, nil
	case rec == nil || rec.Added == 0:
		return ledger.New(), false, true, nil
	case rec.Digests != nil:
		l = ledger.New()
		if err := l.UnmarshalBinary(rec.Digests); err != nil {
			return nil, false, false, fmt.Errorf("status.memberRecord: %w", err)
		}
		return l, false, true, nil
	}
	return nil, false, false, nil
}

// FromConfigMap returns the record a record ConfigMap holds, and the remote segment it
// records: a record of another segment than the one the Segment owns is not its record.
func FromConfigMap(cm *corev1.ConfigMap) (l *ledger.Ledger, remoteID string, err error) {
	l = ledger.New()
	if err := l.UnmarshalBinary(cm.BinaryData[recordKey]); err != nil {
		return nil, "", fmt.Errorf("ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return l, cm.Annotations[recordSegmentAnnotation], nil
}
