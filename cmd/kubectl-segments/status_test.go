package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/ledger"
)

// status shows, on one screen, what the operator recorded of a Segment, its conditions
// with their ages, its own events (not another's of the same name), and what the next
// reconcile does.
func TestStatusScreen(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) metav1.Time { return metav1.NewTime(now.Add(-ago)) }
	digests, err := ledger.New("a", "b").MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	created := at(48 * time.Hour)
	seg := &usersv1alpha1.Segment{
		ObjectMeta: metav1.ObjectMeta{Name: "vip", Namespace: "team", UID: "u-vip", Generation: 2},
		Spec:       usersv1alpha1.SegmentSpec{Name: "VIP customers", Members: []string{"a", "b", "c"}},
		Status: usersv1alpha1.SegmentStatus{
			ID: "r1", Name: "VIP customers", RemoteMembers: 2, CreatedAt: &created, ObservedGeneration: 1,
			Ownership:    &usersv1alpha1.SegmentOwnership{ID: "r1", Account: "acct1"},
			MemberRecord: &usersv1alpha1.MemberRecord{Added: 2, Digests: digests},
			Conditions: []metav1.Condition{{Type: usersv1alpha1.ConditionReady, Status: metav1.ConditionTrue,
				Reason: usersv1alpha1.ReasonSynced, Message: "Remote segment r1 is named \"VIP customers\" and has all 2 desired members",
				LastTransitionTime: at(5 * time.Minute)}},
		},
	}
	event := func(name, uid, reason, msg string, ago time.Duration) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team"}, Type: corev1.EventTypeNormal,
			InvolvedObject: corev1.ObjectReference{Kind: "Segment", Name: "vip", Namespace: "team", UID: types.UID(uid)},
			Reason:         reason, Message: msg, LastTimestamp: at(ago)}
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = usersv1alpha1.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(seg,
		event("e1", "u-vip", "Created", "Created remote segment r1", 48*time.Hour),
		event("e2", "u-vip", "MembersAdded", "Added 2 members to remote segment r1", 10*time.Minute),
		event("e3", "u-old", "Deleted", "an earlier Segment of the same name", time.Hour)).
		WithIndex(&corev1.Event{}, "involvedObject.name", func(o client.Object) []string { return []string{o.(*corev1.Event).InvolvedObject.Name} }).
		WithIndex(&corev1.Event{}, "involvedObject.kind", func(o client.Object) []string { return []string{o.(*corev1.Event).InvolvedObject.Kind} }).
		Build()

	var out bytes.Buffer
	if err := writeStatus(context.Background(), &out, c, types.NamespacedName{Namespace: "team", Name: "vip"}, "segment-operator-system", now); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"team/vip (generation 2, observed 1)",
		"remote segment r1, in account acct1",
		`"VIP customers", 2 members, created 2026-12-04T12:00:00Z`,
		"Desired members        3 (spec.members)",
		"2 (the record of added members, in status)",
		"Ready  True  Synced  5m ago",
		"2d ago   Normal  Created       Created remote segment r1",
		"10m ago  Normal  MembersAdded  Added 2 members",
		"Next reconcile: add 1 member to segment r1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "an earlier Segment") {
		t.Errorf("another Segment's event (same name, other UID) shown:\n%s", got)
	}
	if strings.Index(got, "Created remote") > strings.Index(got, "Added 2 members") {
		t.Errorf("events not oldest first:\n%s", got)
	}
}

// A Segment that does not exist is an error that says so.
func TestStatusOfAMissingSegment(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = usersv1alpha1.AddToScheme(scheme)
	err := writeStatus(context.Background(), &bytes.Buffer{}, fake.NewClientBuilder().WithScheme(scheme).Build(),
		types.NamespacedName{Namespace: "team", Name: "nope"}, "x", time.Now())
	if err == nil || !strings.Contains(err.Error(), "no Segment team/nope") {
		t.Fatalf("err = %v", err)
	}
}
