package main

import (
	"bytes"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

func TestOwnedID(t *testing.T) {
	const account = "aaaaaaaaaaaa"
	legacy := usersv1alpha1.Segment{
		ObjectMeta: metav1.ObjectMeta{Generation: 2, Finalizers: []string{usersv1alpha1.SegmentFinalizer}},
		Status: usersv1alpha1.SegmentStatus{ID: "old1", ObservedGeneration: 2, Conditions: []metav1.Condition{{
			Type: usersv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: usersv1alpha1.ReasonSynced}}},
	}
	observer := *legacy.DeepCopy()
	observer.Spec.ManagementPolicy = usersv1alpha1.ManagementPolicyObserveOnly
	for _, tc := range []struct {
		name string
		seg  usersv1alpha1.Segment
		want string
	}{
		{"no status", usersv1alpha1.Segment{}, ""},
		{"owned in this account", owning("id1", account), "id1"},
		{"owned with no account recorded (an earlier version)", owning("id1", ""), "id1"},
		{"owned in another account", owning("id1", "bbbbbbbbbbbb"), ""},
		{"a create pending, nothing owned yet", owning("", account), ""},
		{"an earlier version's hold", legacy, "old1"},
		{"only observed", observer, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ownedID(&tc.seg, account); got != tc.want {
				t.Errorf("ownedID = %q, want %q", got, tc.want)
			}
		})
	}
}

func owning(id, account string) usersv1alpha1.Segment {
	var s usersv1alpha1.Segment
	s.Status.Ownership = &usersv1alpha1.SegmentOwnership{ID: id, Account: account}
	return s
}

func TestExportRefusesBadFlagsBeforeAnyCall(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--deletion-policy", "Keep"}, `--deletion-policy must be Orphan or Delete, not "Keep"`},
		{[]string{"export", "-o", "table"}, `-o must be yaml or json, not "table"`},
		{[]string{"export", "-o", "json", "--output-dir", "x"}, "--output-dir writes YAML"},
		{[]string{"export", "--kubeconfig", "/nonexistent/kubeconfig"}, "export needs the cluster"},
		{[]string{"export"}, "no kubeconfig: none at $KUBECONFIG or ~/.kube/config"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tc.want) || stdout.Len() > 0 {
				t.Errorf("stdout %q, stderr %q; want %q on stderr only", stdout.String(), stderr.String(), tc.want)
			}
		})
	}
}
