package memberrecord

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

func TestOrphanRecords(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cm := func(name string, age time.Duration, labelled bool) metav1.PartialObjectMetadata {
		o := metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age))}}
		if labelled {
			o.Labels = map[string]string{usersv1alpha1.MemberRecordLabel: "true"}
		}
		return o
	}
	deleting := cm("segment-members-gone-deleting", time.Hour, true)
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	segments := sets.New[types.UID]("live")
	referenced := sets.New("segment-members-restored")
	tests := []struct {
		name string
		cm   metav1.PartialObjectMetadata
		want bool
	}{
		{"its Segment lives", cm("segment-members-live", time.Hour, true), false},
		{"its Segment is gone", cm("segment-members-gone", time.Hour, true), true},
		{"gone, but younger than the minimum age", cm("segment-members-gone", time.Minute, true), false},
		{"just at the minimum age", cm("segment-members-gone", 10*time.Minute, true), true},
		{"not labelled a record", cm("segment-members-gone", time.Hour, false), false},
		{"labelled, but not a record's name", cm("members-gone", time.Hour, true), false},
		{"a name with no UID", cm("segment-members-", time.Hour, true), false},
		{"already being deleted", deleting, false},
		{"named by a Segment's status, under another UID", cm("segment-members-restored", time.Hour, true), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := orphanRecords([]metav1.PartialObjectMetadata{tc.cm}, segments, referenced, now, 10*time.Minute)
			if (len(got) == 1) != tc.want || len(got) > 1 {
				t.Errorf("orphanRecords = %v, want orphan %v", got, tc.want)
			}
		})
	}
	all := []metav1.PartialObjectMetadata{cm("segment-members-a", time.Hour, true), cm("segment-members-live", time.Hour, true), cm("segment-members-b", time.Hour, true)}
	var names []string
	for _, o := range orphanRecords(all, segments, referenced, now, 0) {
		names = append(names, o.Name)
	}
	if !slices.Equal(names, []string{"segment-members-a", "segment-members-b"}) {
		t.Errorf("orphans %v", names)
	}
}

// sweep, against a fake API: records are listed page by page; a live Segment's record and a
// young one stay; an orphan goes.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	old := metav1.NewTime(time.Now().Add(-time.Hour))
	record := func(uid string, created metav1.Time) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: recordName(types.UID(uid)), Namespace: "operator",
			CreationTimestamp: created, Labels: map[string]string{usersv1alpha1.MemberRecordLabel: "true"}}}
	}
	objs := []client.Object{
		&usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "live", Namespace: "team", UID: "live"}},
		record("live", old), record("young", metav1.Now()),
		// Another namespace's ConfigMap of that name and label is not the manager's.
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: recordName("elsewhere"), Namespace: "team",
			CreationTimestamp: old, Labels: map[string]string{usersv1alpha1.MemberRecordLabel: "true"}}},
	}
	for i := range 1200 { // more than a page
		objs = append(objs, record(fmt.Sprintf("gone-%04d", i), old))
	}
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := usersv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	sweeper := New("operator", c, c, 0).Sweeper(c, 0, 10*time.Minute)
	n, err := sweeper.sweep(ctx)
	if err != nil || n != 1200 {
		t.Fatalf("sweep = %d, %v; want 1200 deleted", n, err)
	}
	var left corev1.ConfigMapList
	if err := c.List(ctx, &left); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cm := range left.Items {
		names = append(names, cm.Namespace+"/"+cm.Name)
	}
	slices.Sort(names)
	want := []string{"operator/" + recordName("live"), "operator/" + recordName("young"), "team/" + recordName("elsewhere")}
	if !slices.Equal(names, want) {
		t.Errorf("left %v, want %v", names, want)
	}
}
