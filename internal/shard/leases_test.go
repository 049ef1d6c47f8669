package shard

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

const ns = "segment-operator-system"

func leases(t *testing.T, objs ...client.Object) (*Leases, client.Client, *time.Time) {
	t.Helper()
	s := runtime.NewScheme()
	if err := usersv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := coordinationv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	l := NewLeases(c, c, ns, 30*time.Second)
	l.now = func() time.Time { return now }
	return l, c, &now
}

func seg(name string, status usersv1alpha1.SegmentStatus) *usersv1alpha1.Segment {
	return &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, UID: types.UID("uid-" + name)}, Status: status}
}

func holderOfLease(t *testing.T, c client.Client, name string) string {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, l); apierrors.IsNotFound(err) {
		return ""
	} else if err != nil {
		t.Fatal(err)
	}
	return *l.Spec.HolderIdentity
}

// A claim is one Lease: the first Segment takes it; another may not while the holder holds
// the segment (a fresh claim, the segment owned, a pending create), and takes it over once
// the holder holds nothing (gone, or owning another segment).
func TestHold(t *testing.T) {
	owner := seg("owner", usersv1alpha1.SegmentStatus{Ownership: &usersv1alpha1.SegmentOwnership{ID: "s-1"}})
	for _, tc := range []struct {
		name string
		// holder is the holder as the API server has it when the other claims, after
		// claimGrace (nil: deleted); fresh claims within claimGrace instead.
		holder *usersv1alpha1.Segment
		fresh  bool
		taken  bool
	}{
		{"a claim just taken", owner, true, false},
		{"the segment owned", owner, false, false},
		{"a pending create", seg("owner", usersv1alpha1.SegmentStatus{Ownership: &usersv1alpha1.SegmentOwnership{
			CreatePending: &usersv1alpha1.CreateIntent{Name: "vip"}}}), false, false},
		{"the holder deleted", nil, false, true},
		{"the holder owns another segment", seg("owner", usersv1alpha1.SegmentStatus{Ownership: &usersv1alpha1.SegmentOwnership{ID: "s-2"}}), false, true},
		{"a Segment of the holder's name, made again", func() *usersv1alpha1.Segment {
			s := owner.DeepCopy()
			s.UID = "uid-new"
			return s
		}(), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, c, now := leases(t)
			ctx := context.Background()
			if _, ok, err := l.Hold(ctx, owner, "s-1"); err != nil || !ok {
				t.Fatalf("first claim: %v, %v", ok, err)
			}
			if _, ok, err := l.Hold(ctx, owner, "s-1"); err != nil || !ok {
				t.Fatalf("the holder's claim again: %v, %v", ok, err)
			}
			if tc.holder != nil {
				if err := c.Create(ctx, tc.holder.DeepCopy()); err != nil {
					t.Fatal(err)
				}
			}
			if !tc.fresh {
				*now = now.Add(claimGrace + time.Second)
			}
			holder, ok, err := l.Hold(ctx, seg("other", usersv1alpha1.SegmentStatus{}), "s-1")
			if err != nil || ok != tc.taken {
				t.Fatalf("another's claim: taken %v, %v; want %v", ok, err, tc.taken)
			}
			want := "uid-owner"
			if tc.taken {
				want = "uid-other"
			} else if holder.String() != "team/owner" {
				t.Errorf("holder %s, want team/owner", holder)
			}
			if got := holderOfLease(t, c, ClaimLease("s-1")); got != want {
				t.Errorf("the Lease is held by %q, want %q", got, want)
			}
		})
	}
}

// Let deletes a claim's Lease only for its holder.
func TestLet(t *testing.T) {
	l, c, _ := leases(t)
	ctx := context.Background()
	owner := seg("owner", usersv1alpha1.SegmentStatus{})
	if _, ok, err := l.Hold(ctx, owner, "s-1"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	l.Let(ctx, "uid-other", "s-1")
	if holderOfLease(t, c, ClaimLease("s-1")) != "uid-owner" {
		t.Fatal("another Segment let go of the holder's claim")
	}
	l.Let(ctx, owner.UID, "s-1")
	if got := holderOfLease(t, c, ClaimLease("s-1")); got != "" {
		t.Errorf("the holder let go, and the Lease is still held by %q", got)
	}
}

// A name lock is one Lease per account and name: held until unlocked or until it ends
// (a create's deadline and the skew); the end is what a waiting Segment is told; an unlock
// after the lock was taken over does not free the new holder's.
func TestLockName(t *testing.T) {
	l, c, now := leases(t)
	ctx := context.Background()
	a, b := seg("a", usersv1alpha1.SegmentStatus{}), seg("b", usersv1alpha1.SegmentStatus{})
	unlockA, _, _, err := l.LockName(ctx, a, "acct", "vip")
	if err != nil || unlockA == nil {
		t.Fatal(err)
	}
	if unlock, _, _, err := l.LockName(ctx, b, "other-acct", "vip"); err != nil || unlock == nil {
		t.Fatalf("another account's name is another lock: %v", err)
	}
	unlock, holder, until, err := l.LockName(ctx, b, "acct", "vip")
	if err != nil || unlock != nil || holder.Name != "a" || !until.Equal(now.Add(l.nameTTL)) {
		t.Fatalf("a held name: unlock %v, holder %v, until %v (want %v), %v", unlock != nil, holder, until, now.Add(l.nameTTL), err)
	}
	*now = now.Add(l.nameTTL + time.Second)
	unlockB, _, _, err := l.LockName(ctx, b, "acct", "vip")
	if err != nil || unlockB == nil {
		t.Fatalf("an ended lock is not taken over: %v", err)
	}
	unlockA()
	if got := holderOfLease(t, c, NameLease("acct", "vip")); got != "uid-b" {
		t.Fatalf("a's late unlock freed b's lock: held by %q", got)
	}
	unlockB()
	if got := holderOfLease(t, c, NameLease("acct", "vip")); got != "" {
		t.Errorf("unlocked, still held by %q", got)
	}
}

// What the sweep deletes: a name lock past its end; a claim past its grace whose holder is
// gone or holds neither its segment nor a pending create. Never a claim its holder holds,
// nor one just taken (its holder may not be in this manager's cache yet).
func TestLeft(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	owner := seg("owner", usersv1alpha1.SegmentStatus{Ownership: &usersv1alpha1.SegmentOwnership{ID: "s-1"}})
	creating := seg("creating", usersv1alpha1.SegmentStatus{Ownership: &usersv1alpha1.SegmentOwnership{
		CreatePending: &usersv1alpha1.CreateIntent{Name: "vip"}}})
	moved := seg("moved", usersv1alpha1.SegmentStatus{Ownership: &usersv1alpha1.SegmentOwnership{ID: "s-2"}})
	holders := map[types.UID]*usersv1alpha1.Segment{owner.UID: owner, creating.UID: creating, moved.UID: moved}
	lease := func(kind, holder string, age time.Duration, ttl int32) *coordinationv1.Lease {
		at := metav1.NewMicroTime(now.Add(-age))
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LockLabel: kind},
			Annotations: map[string]string{remoteIDAnnotation: "s-1"}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: new("uid-" + holder), AcquireTime: &at, LeaseDurationSeconds: new(ttl)}}
	}
	for _, tc := range []struct {
		name  string
		lease *coordinationv1.Lease
		want  bool
	}{
		{"a claim its holder owns", lease("claim", "owner", time.Hour, 0), false},
		{"a claim of a holder creating", lease("claim", "creating", time.Hour, 0), false},
		{"a claim of a holder gone", lease("claim", "gone", time.Hour, 0), true},
		{"a claim whose holder owns another segment", lease("claim", "moved", time.Hour, 0), true},
		{"a claim just taken, its holder not seen yet", lease("claim", "gone", claimGrace/2, 0), false},
		{"a claim that does not say its segment", func() *coordinationv1.Lease {
			l := lease("claim", "moved", time.Hour, 0)
			delete(l.Annotations, remoteIDAnnotation)
			return l
		}(), false},
		{"a name lock held", lease("name", "gone", 10*time.Second, 40), false},
		{"a name lock ended", lease("name", "owner", time.Minute, 40), true},
	} {
		if got := left(tc.lease, holders, now); got != tc.want {
			t.Errorf("%s: left %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The sweep deletes the Leases left, and only those, in its namespace.
func TestSweep(t *testing.T) {
	owner := seg("owner", usersv1alpha1.SegmentStatus{Ownership: &usersv1alpha1.SegmentOwnership{ID: "s-1"}})
	l, c, now := leases(t, owner)
	ctx := context.Background()
	if _, ok, err := l.Hold(ctx, owner, "s-1"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	gone := seg("gone", usersv1alpha1.SegmentStatus{})
	if _, ok, err := l.Hold(ctx, gone, "s-9"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	*now = now.Add(claimGrace + time.Second)
	n, err := l.Sweeper(c, time.Hour).sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v; want the claim of the Segment gone", n, err)
	}
	if holderOfLease(t, c, ClaimLease("s-1")) != "uid-owner" || holderOfLease(t, c, ClaimLease("s-9")) != "" {
		t.Error("the sweep deleted the wrong claim")
	}
}
