package credentials

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/remote"
)

func TestHoldsAccount(t *testing.T) {
	creds := remote.Credentials{BaseURL: "https://api.chatbot.com", Token: "t"}
	here, elsewhere := creds.AccountID(), remote.Credentials{Token: "other"}.AccountID()
	at := metav1.NewMicroTime(time.Unix(1_000_000, 0))
	for _, tc := range []struct {
		name      string
		ownership *usersv1alpha1.SegmentOwnership
		want      bool
	}{
		{"owns nothing", nil, false},
		{"owns a segment in the account: held", &usersv1alpha1.SegmentOwnership{ID: "s1", Account: here}, true},
		{"owns one in another account", &usersv1alpha1.SegmentOwnership{ID: "s1", Account: elsewhere}, false},
		{"a create pending in the account", &usersv1alpha1.SegmentOwnership{
			CreatePending: &usersv1alpha1.CreateIntent{At: at, Name: "n", Account: here}}, true},
		{"a create pending in another account", &usersv1alpha1.SegmentOwnership{
			CreatePending: &usersv1alpha1.CreateIntent{At: at, Name: "n", Account: elsewhere}}, false},
		{"an ownership of an earlier version, no account recorded", &usersv1alpha1.SegmentOwnership{ID: "s1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Namespace: "team"}}
			seg.Status.Ownership = tc.ownership
			if got := holdsAccount(seg, creds); got != tc.want {
				t.Errorf("holdsAccount = %v, want %v", got, tc.want)
			}
		})
	}
}

// The accounts a namespace's Segments hold, from their status: owned segments' and pending
// creates', each once; not another namespace's, nor an ownership with no account recorded.
func TestHeldAccounts(t *testing.T) {
	s := runtime.NewScheme()
	_ = usersv1alpha1.AddToScheme(s)
	at := metav1.NewMicroTime(time.Unix(1_000_000, 0))
	seg := func(ns, name string, o *usersv1alpha1.SegmentOwnership) *usersv1alpha1.Segment {
		return &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Status: usersv1alpha1.SegmentStatus{Ownership: o}}
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		seg("team", "a", &usersv1alpha1.SegmentOwnership{ID: "s1", Account: "acct-1"}),
		seg("team", "b", &usersv1alpha1.SegmentOwnership{ID: "s2", Account: "acct-1"}),
		seg("team", "c", &usersv1alpha1.SegmentOwnership{CreatePending: &usersv1alpha1.CreateIntent{At: at, Name: "n", Account: "acct-2"}}),
		seg("team", "d", &usersv1alpha1.SegmentOwnership{ID: "s3"}),
		seg("team", "e", nil),
		seg("other", "f", &usersv1alpha1.SegmentOwnership{ID: "s4", Account: "acct-3"}),
	).Build()
	if got := HeldAccounts(c)("team"); !slices.Equal(got, []string{"acct-1", "acct-2"}) {
		t.Fatalf("held = %q", got)
	}
}
