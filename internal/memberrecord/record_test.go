package memberrecord

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/ledger"
)

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%06d", prefix, i)
	}
	return out
}

// Where a record is kept, and what is read back, in each state a Segment's status can be in.
func TestMemberRecords(t *testing.T) {
	ctx := context.Background()
	owned := func(uid, id string) *usersv1alpha1.Segment {
		seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "team", UID: types.UID("uid-" + uid)}}
		seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{ID: id}
		return seg
	}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).
		WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "operator"}}).Build()
	m := New("operator", c, c, 0)

	t.Run("nothing recorded", func(t *testing.T) {
		l, migrated, lost, err := m.load(ctx, owned("a", "r1"), nil)
		if err != nil || l.Len() != 0 || migrated || lost {
			t.Fatalf("load = %d, %v, %v, %v", l.Len(), migrated, lost, err)
		}
	})
	t.Run("an earlier version's addedMembers is migrated", func(t *testing.T) {
		seg := owned("b", "r1")
		seg.Status.AddedMembers = []string{"u1", "u2"}
		l, migrated, _, err := m.load(ctx, seg, nil)
		if err != nil || !migrated || !l.Has("u1") || l.Len() != 2 {
			t.Fatalf("load = %d, migrated %v, %v", l.Len(), migrated, err)
		}
		if err := m.Save(ctx, seg, l); err != nil {
			t.Fatal(err)
		}
		if seg.Status.AddedMembers != nil || seg.Status.MemberRecord.Added != 2 || seg.Status.MemberRecord.Digests == nil ||
			seg.Status.MemberRecord.ConfigMap != "" {
			t.Fatalf("saved as %+v, addedMembers %v", seg.Status.MemberRecord, seg.Status.AddedMembers)
		}
		back, migrated, _, err := m.load(ctx, seg, nil)
		if err != nil || migrated || back.Len() != 2 || !back.Has("u2") {
			t.Fatalf("read back %d (migrated %v): %v", back.Len(), migrated, err)
		}
	})
	t.Run("a large record goes to a ConfigMap, read back after a restart", func(t *testing.T) {
		seg := owned("c", "r1")
		l := ledger.New(ids("u", 10_000)...)
		if err := m.Save(ctx, seg, l); err != nil {
			t.Fatal(err)
		}
		rec := seg.Status.MemberRecord
		if rec.Digests != nil || rec.ConfigMap != recordName(seg.UID) || rec.Added != 10_000 {
			t.Fatalf("saved as %+v", rec)
		}
		lostStatus := seg.DeepCopy()
		lostStatus.Status.MemberRecord = nil // the status write after the fill lost to an edit
		if again, migrated, _, err := m.load(ctx, lostStatus, nil); err != nil || !migrated || again.Len() != 10_000 {
			t.Fatalf("with its status write lost: %d members, migrated %v, %v", again.Len(), migrated, err)
		}
		restarted := New("operator", c, c, 0)
		back, _, lost, err := restarted.load(ctx, seg, nil)
		if err != nil || lost || back.Len() != 10_000 || !back.Has("u009999") {
			t.Fatalf("read back %d, lost %v: %v", back.Len(), lost, err)
		}
		back.Add("more")
		if err := restarted.Save(ctx, seg, back); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		// m's memory is stale now: its next write is refused, and it reads anew.
		if err := m.Save(ctx, seg, ledger.New(ids("u", 10_001)...)); err == nil {
			t.Fatal("a write over a version this process did not see went through")
		}
		if fresh, _, _, _ := m.load(ctx, seg, nil); fresh.Len() != 10_001 {
			t.Fatalf("after a refused write: %d", fresh.Len())
		}

		// After a Recreate, the ConfigMap records the old segment: it is not read for the new one.
		seg.Status.Ownership.ID = "r2"
		fresh, _, lost, err := New("operator", c, c, 0).load(ctx, seg, nil)
		if err != nil || !lost || fresh.Len() != 0 {
			t.Fatalf("old segment's record: %d, lost %v, %v", fresh.Len(), lost, err)
		}
		Reset(seg)
		if seg.Status.MemberRecord == nil || seg.Status.MemberRecord.ConfigMap == "" || seg.Status.MemberRecord.Added != 0 {
			t.Fatalf("reset kept %+v", seg.Status.MemberRecord)
		}
		if l, _, _, err := m.load(ctx, seg, nil); err != nil || l.Len() != 0 {
			t.Fatalf("reset record: %d, %v", l.Len(), err)
		}

		if err := m.Drop(ctx, seg); err != nil {
			t.Fatal(err)
		}
		var cms corev1.ConfigMapList
		if err := c.List(ctx, &cms, client.InNamespace("operator")); err != nil || len(cms.Items) != 0 {
			t.Fatalf("left %d ConfigMaps (%v)", len(cms.Items), err)
		}
	})
	t.Run("a ConfigMap that status does not name, after a restart: found, and dropped", func(t *testing.T) {
		seg := owned("e", "r1")
		if err := m.Save(ctx, seg, ledger.New(ids("u", 10_000)...)); err != nil {
			t.Fatal(err)
		}
		lostStatus := seg.DeepCopy()
		lostStatus.Status.MemberRecord = nil // the status write lost, then the manager restarted

		reads := &countingReader{Reader: c}
		restarted := New("operator", reads, c, 0)
		// At steady state, and for a small Segment, nothing is looked for.
		if l, _, _, err := restarted.load(ctx, seg, ids("u", 10_000)); err != nil || l.Len() != 10_000 {
			t.Fatalf("named: %d, %v", l.Len(), err)
		}
		reads.gets = 0
		restarted = New("operator", reads, c, 0)
		if l, migrated, _, err := restarted.load(ctx, lostStatus, ids("v", unlostMembers)); err != nil || l.Len() != 0 || migrated || reads.gets != 0 {
			t.Fatalf("small fill: %d members, migrated %v, %d reads, %v", l.Len(), migrated, reads.gets, err)
		}
		restarted = New("operator", reads, c, 0)
		l, migrated, lost, err := restarted.load(ctx, lostStatus, ids("u", 10_001))
		if err != nil || !migrated || lost || l.Len() != 10_000 || reads.gets != 1 {
			t.Fatalf("large fill: %d members, migrated %v, lost %v, %d reads, %v", l.Len(), migrated, lost, reads.gets, err)
		}
		// Another segment's (before a Recreate) is not taken.
		other := lostStatus.DeepCopy()
		other.Status.Ownership.ID = "r2"
		if l, migrated, _, err := New("operator", c, c, 0).load(ctx, other, ids("u", 10_001)); err != nil || l.Len() != 0 || migrated {
			t.Fatalf("another segment's: %d, migrated %v, %v", l.Len(), migrated, err)
		}

		if err := New("operator", c, c, 0).Drop(ctx, lostStatus); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "operator", Name: recordName(seg.UID)}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			t.Fatalf("the ConfigMap outlived its Segment: %v", err)
		}
	})
	t.Run("after a Recreate, a small record in status beside the old segment's ConfigMap name", func(t *testing.T) {
		seg := owned("f", "r1")
		if err := m.Save(ctx, seg, ledger.New(ids("u", 10_000)...)); err != nil {
			t.Fatal(err)
		}
		seg.Status.Ownership.ID = "r2"
		Reset(seg) // keeps the ConfigMap's name, Added 0
		if l, _, lost, err := New("operator", c, c, 0).load(ctx, seg, ids("u", 300)); err != nil || l.Len() != 0 || lost {
			t.Fatalf("just reset: %d, lost %v, %v", l.Len(), lost, err)
		}
		if err := m.Save(ctx, seg, ledger.New(ids("u", 300)...)); err != nil {
			t.Fatal(err)
		}
		if rec := seg.Status.MemberRecord; rec.Digests == nil || rec.ConfigMap == "" {
			t.Fatalf("saved as %+v", rec)
		}
		l, _, lost, err := New("operator", c, c, 0).load(ctx, seg, ids("u", 300))
		if err != nil || lost || l.Len() != 300 {
			t.Fatalf("the record in status: %d, lost %v, %v", l.Len(), lost, err)
		}
	})
	t.Run("the unnamed record is looked for once, and merged with the one in status", func(t *testing.T) {
		seg := owned("g", "r1")
		inStatus := ledger.New(ids("u", 350)...)
		if err := m.Save(ctx, seg, inStatus); err != nil { // inline
			t.Fatal(err)
		}
		reads := &countingReader{Reader: c}
		fresh := New("operator", reads, c, 0)
		if _, _, _, err := fresh.load(ctx, seg, ids("u", 350)); err != nil || reads.gets != 0 {
			t.Fatalf("steady state: %d reads, %v", reads.gets, err)
		}
		for range 3 {
			if l, migrated, _, err := fresh.load(ctx, seg, ids("u", 400)); err != nil || migrated || l.Len() != 350 {
				t.Fatalf("no ConfigMap: %d, migrated %v, %v", l.Len(), migrated, err)
			}
		}
		if reads.gets != 1 {
			t.Fatalf("%d reads for a ConfigMap that is not there, want 1", reads.gets)
		}

		big := seg.DeepCopy()
		if err := m.Save(ctx, big, ledger.New(append(ids("v", 1000), "u000000")...)); err != nil { // a ConfigMap
			t.Fatal(err)
		}
		l, migrated, _, err := New("operator", c, c, 0).load(ctx, seg, ids("v", 1001))
		if err != nil || !migrated || l.Len() != 1000+350 || !l.Has("u000349") || !l.Has("v000999") {
			t.Fatalf("merged: %d, migrated %v, %v", l.Len(), migrated, err)
		}
	})
	t.Run("too large: refused before anything is sent", func(t *testing.T) {
		if err := m.Reserve(ctx, owned("f", "r1"), ledger.New(ids("u", 100_000)...)); err != nil {
			t.Fatalf("100,000 refused: %v", err)
		}
		err := m.Reserve(ctx, owned("f", "r1"), ledger.New(ids("u", 200_000)...))
		var st *Error
		if !errors.As(err, &st) || st.reason != usersv1alpha1.ReasonMemberRecordTooLarge {
			t.Fatalf("200,000: %v", err)
		}
	})
	t.Run("no namespace to keep a large record in", func(t *testing.T) {
		// As the API server answers a create in a namespace that does not exist.
		noNamespace := interceptor.NewClient(c, interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if obj.GetNamespace() == "gone" {
				return apierrors.NewNotFound(corev1.Resource("namespaces"), "gone")
			}
			return c.Create(ctx, obj, opts...)
		}})
		for _, tc := range []struct {
			namespace string
			want      string
		}{
			{"", "the manager was given none: run it with --member-record-namespace"},
			{"gone", `namespace "gone" (--member-record-namespace) does not exist: create it`},
		} {
			m := New(tc.namespace, noNamespace, noNamespace, 0)
			large := ledger.New(ids("u", 1000)...)
			if err := m.Reserve(ctx, owned("d", "r1"), ledger.New(ids("u", 100)...)); err != nil {
				t.Fatalf("%q: 100 members, kept in status, refused: %v", tc.namespace, err)
			}
			for what, err := range map[string]error{"reserve": m.Reserve(ctx, owned("d", "r1"), large),
				"save": m.Save(ctx, owned("d", "r1"), large)} {
				var st *Error
				if !errors.As(err, &st) || st.reason != usersv1alpha1.ReasonMemberRecordNamespaceMissing || !strings.Contains(st.msg, tc.want) {
					t.Fatalf("%q: %s = %v, want MemberRecordNamespaceMissing saying %q", tc.namespace, what, err, tc.want)
				}
			}
		}
	})
}

// The records of a namespace's Segments in the manager's namespace are charged to it: one
// that would take it past its bound is refused before any member is sent, whatever other
// namespaces keep; records kept before this process started count, and so do those an
// earlier version wrote without a size; a record deleted with its Segment stops counting.
func TestMemberRecordsChargedToTheirNamespace(t *testing.T) {
	ctx := context.Background()
	seg := func(ns, uid string) *usersv1alpha1.Segment {
		s := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: ns, UID: types.UID(uid)}}
		s.Status.Ownership = &usersv1alpha1.SegmentOwnership{ID: "r-" + uid}
		return s
	}
	record := func(ns, uid string, size string, data []byte) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: recordName(types.UID(uid)), Namespace: "operator",
			Labels:      map[string]string{usersv1alpha1.MemberRecordLabel: "true"},
			Annotations: map[string]string{recordOwnerAnnotation: ns + "/" + uid}}, BinaryData: map[string][]byte{recordKey: data}}
		if size != "" {
			cm.Annotations[recordBytesAnnotation] = size
		}
		return cm
	}
	large, _ := ledger.New(ids("u", 1000)...).MarshalBinary() // some 7 KB
	n := int64(len(large))
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "operator"}},
		record("team", "kept-before", fmt.Sprint(n), nil),
		record("team", "earlier-version", "", large), // no size: read once
		record("other", "elsewhere", fmt.Sprint(10*n), nil),
	).Build()
	m := New("operator", c, c, 4*n)
	refused := func(err error) bool {
		var st *Error
		return errors.As(err, &st) && st.reason == usersv1alpha1.ReasonMemberRecordQuotaExceeded
	}
	members := ledger.New(ids("u", 1000)...)
	if err := m.Reserve(ctx, seg("team", "third"), members); err != nil {
		t.Fatalf("the third record of the namespace: %v", err)
	}
	if err := m.Save(ctx, seg("team", "third"), members); err != nil {
		t.Fatal(err)
	}
	if err := m.Reserve(ctx, seg("team", "third"), members); err != nil {
		t.Fatalf("a record charged already, not grown: %v", err)
	}
	if err := m.Reserve(ctx, seg("team", "fourth"), members); err != nil {
		t.Fatalf("the fourth: %v", err)
	}
	err := m.Reserve(ctx, seg("team", "fifth"), members)
	if !refused(err) || !strings.Contains(err.Error(), fmt.Sprintf("may take at most %d bytes (--max-member-record-bytes-per-namespace)", 4*n)) {
		t.Fatalf("the fifth: %v, want MemberRecordQuotaExceeded", err)
	}
	if err := m.Reserve(ctx, seg("team", "fifth"), ledger.New(ids("u", 100)...)); err != nil {
		t.Fatalf("a record small enough for status is not charged: %v", err)
	}
	if err := m.Reserve(ctx, seg("another", "first"), members); err != nil {
		t.Fatalf("another namespace refused for this one's records: %v", err)
	}
	saved := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "operator", Name: recordName("third")}, saved); err != nil ||
		saved.Annotations[recordBytesAnnotation] != fmt.Sprint(n) {
		t.Fatalf("the record's size annotation: %v, %v", saved.Annotations, err)
	}
	unsized := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "operator", Name: recordName("earlier-version")}, unsized); err != nil ||
		unsized.Annotations[recordBytesAnnotation] != fmt.Sprint(n) {
		t.Fatalf("an earlier version's record not given its size, to be read once: %v, %v", unsized.Annotations, err)
	}
	if err := m.Drop(ctx, seg("team", "third")); err != nil {
		t.Fatal(err)
	}
	if err := m.Reserve(ctx, seg("team", "fifth"), members); err != nil {
		t.Fatalf("refused after a record of the namespace went: %v", err)
	}
}

// countingReader counts the Gets that reach the API server.
type countingReader struct {
	client.Reader
	gets int
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.gets++
	return r.Reader.Get(ctx, key, obj, opts...)
}

// The memo of records holds no more than memoDigests, whatever the number of large
// Segments a tenant makes; a record is read again from its ConfigMap once evicted.
func TestMemberRecordMemoIsBounded(t *testing.T) {
	m := New("operator", nil, nil, 0)
	big := ledger.New(ids("u", 300_000)...)
	for i := range 20 {
		m.remember(types.UID(fmt.Sprint(i)), recordMemo{ledger: big})
		if m.digests > memoDigests {
			t.Fatalf("after %d records: %d digests kept", i+1, m.digests)
		}
	}
	if m.memo.Len() != memoDigests/300_000 {
		t.Errorf("%d records kept, want the %d most recent", m.memo.Len(), memoDigests/300_000)
	}
	m.remember("again", recordMemo{ledger: big})
	m.remember("again", recordMemo{ledger: ledger.New("one")})
	if _, ok := m.memo.Get(types.UID("0")); ok {
		t.Error("the least recently used record kept")
	}
	m.forget("again")
	for i := range 20 {
		m.forget(types.UID(fmt.Sprint(i)))
	}
	if m.digests != 0 || m.memo.Len() != 0 {
		t.Errorf("all forgotten, yet %d digests in %d records counted", m.digests, m.memo.Len())
	}
}
