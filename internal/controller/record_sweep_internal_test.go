package controller

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := orphanRecords([]metav1.PartialObjectMetadata{tc.cm}, segments, now, 10*time.Minute)
			if (len(got) == 1) != tc.want || len(got) > 1 {
				t.Errorf("orphanRecords = %v, want orphan %v", got, tc.want)
			}
		})
	}
	all := []metav1.PartialObjectMetadata{cm("segment-members-a", time.Hour, true), cm("segment-members-live", time.Hour, true), cm("segment-members-b", time.Hour, true)}
	var names []string
	for _, o := range orphanRecords(all, segments, now, 0) {
		names = append(names, o.Name)
	}
	if !slices.Equal(names, []string{"segment-members-a", "segment-members-b"}) {
		t.Errorf("orphans %v", names)
	}
}
