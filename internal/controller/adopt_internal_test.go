package controller

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/ownership"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/remote/remotetest"
)

// adoptSetup is an account of the simulator holding one segment ("Made in the UI", its ID
// returned), a fake API server holding objs, and a cache that lags: it holds cached, the
// copies a reconcile would read. The registry reads the cache, as the manager's does.
func adoptSetup(t *testing.T, objs, cached []client.Object) (*SegmentReconciler, *remote.Account, client.Client, string) {
	t.Helper()
	sim, acct := remotetest.Account(t, "team")
	id := sim.Create("Made in the UI", "u1")
	if err := acct.ListAfter(context.Background(), time.Time{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	_ = usersv1alpha1.AddToScheme(scheme)
	api := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&usersv1alpha1.Segment{}).Build()
	cb := fake.NewClientBuilder().WithScheme(scheme).WithObjects(cached...)
	for _, i := range ownership.Indexes() {
		cb = cb.WithIndex(&usersv1alpha1.Segment{}, i.Field, i.Extract)
	}
	r := &SegmentReconciler{Client: api, Recorder: events.NewFakeRecorder(10), owners: ownership.NewRegistry(cb.Build(), time.Second)}
	return r, acct, api, id
}

func newSegment(name string) *usersv1alpha1.Segment {
	return &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team", UID: k8stypes.UID("u-" + name)},
		Status: usersv1alpha1.SegmentStatus{Ownership: &usersv1alpha1.SegmentOwnership{}}}
}

// Adopting a free segment makes the claim durable (the finalizer, then the ownership
// record) and keeps it in this process; one another Segment owns is left alone, and nothing
// is written for it.
func TestAdopt(t *testing.T) {
	ctx := context.Background()
	a := newSegment("a")
	r, acct, api, id := adoptSetup(t, []client.Object{a.DeepCopy()}, nil)
	if err := api.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
		t.Fatal(err)
	}
	if err := r.adopt(ctx, a, acct, newStatusWriter(api, a), id, "spec.id"); err != nil {
		t.Fatal(err)
	}
	stored := &usersv1alpha1.Segment{}
	_ = api.Get(ctx, client.ObjectKeyFromObject(a), stored)
	if !controllerutil.ContainsFinalizer(stored, usersv1alpha1.SegmentFinalizer) || stored.OwnedID() != id ||
		stored.Status.Ownership.Account != acct.ID || stored.Status.Name != "Made in the UI" {
		t.Fatalf("stored: finalizers %q, status %+v", stored.Finalizers, stored.Status)
	}
	if other, _ := r.owners.Claim(ctx, newSegment("b"), id); other != "Segment team/a" {
		t.Errorf("another Segment's claim: held by %q, want team/a", other)
	}

	// A second Segment, whose cache shows a as the owner: Conflict, and nothing written.
	b := newSegment("b")
	r2, acct2, api2, id2 := adoptSetup(t, []client.Object{b.DeepCopy()}, nil)
	_ = api2.Get(ctx, client.ObjectKeyFromObject(b), b)
	r2.owners = ownership.NewRegistry(cacheOwning(t, "a", id2), time.Second) // the cache shows team/a owning it
	err := r2.adopt(ctx, b, acct2, newStatusWriter(api2, b), id2, "spec.id")
	if reason := classify(err, time.Minute).reason; reason != usersv1alpha1.ReasonConflict {
		t.Fatalf("adopting a segment another Segment owns: %v (reason %q)", err, reason)
	}
	stored = &usersv1alpha1.Segment{}
	_ = api2.Get(ctx, client.ObjectKeyFromObject(b), stored)
	if len(stored.Finalizers) != 0 || stored.OwnedID() != "" {
		t.Errorf("written for a refused claim: finalizers %q, ownership %+v", stored.Finalizers, stored.Status.Ownership)
	}
}

// A reconcile that starts from a stale copy (the cache has not seen the last adoption) and
// adopts the same segment again fails its finalizer patch on a conflict: the Segment's claim
// stands, and no other Segment can take the segment meanwhile.
func TestAdoptFromAStaleCopyKeepsTheClaim(t *testing.T) {
	ctx := context.Background()
	a := newSegment("a")
	r, acct, api, id := adoptSetup(t, []client.Object{a.DeepCopy()}, []client.Object{a.DeepCopy()})
	if err := api.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
		t.Fatal(err)
	}
	stale := a.DeepCopy()
	if err := r.adopt(ctx, a, acct, newStatusWriter(api, a), id, "spec.id"); err != nil {
		t.Fatal(err)
	}
	if err := r.adopt(ctx, stale, acct, newStatusWriter(api, stale), id, "spec.id"); err == nil {
		t.Fatal("adopting from a stale copy succeeded: the finalizer patch should conflict")
	}
	if other, _ := r.owners.Claim(ctx, newSegment("b"), id); other != "Segment team/a" {
		t.Errorf("after the stale reconcile, another Segment's claim: held by %q, want team/a", other)
	}
}

// cacheOwning is a cache in which Segment team/name owns id.
func cacheOwning(t *testing.T, name, id string) client.Reader {
	t.Helper()
	scheme := runtime.NewScheme()
	_ = usersv1alpha1.AddToScheme(scheme)
	cb := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&usersv1alpha1.Segment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team", UID: k8stypes.UID("u-" + name)},
		Status:     usersv1alpha1.SegmentStatus{Ownership: &usersv1alpha1.SegmentOwnership{ID: id, Account: "acct"}}})
	for _, i := range ownership.Indexes() {
		cb = cb.WithIndex(&usersv1alpha1.Segment{}, i.Field, i.Extract)
	}
	return cb.Build()
}
