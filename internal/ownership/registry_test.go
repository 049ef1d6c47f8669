package ownership

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
)

var intentAt = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func segment(ns, name string, o *usersv1alpha1.SegmentOwnership) *usersv1alpha1.Segment {
	return &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "/" + name)},
		Status: usersv1alpha1.SegmentStatus{Ownership: o}}
}

// registry reads Segments as the manager's does: by the indexes IndexInformer adds to the
// Segment informer's store.
func registry(t *testing.T, objs ...client.Object) *Registry {
	t.Helper()
	store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, indexers())
	for _, o := range objs {
		if err := store.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	return readerRegistry(t).WithIndexer(store)
}

// readerRegistry reads Segments from a fake client, by field indexes of Indexes.
func readerRegistry(t *testing.T, objs ...client.Object) *Registry {
	t.Helper()
	s := runtime.NewScheme()
	if err := usersv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...)
	for _, i := range Indexes() {
		b = b.WithIndex(&usersv1alpha1.Segment{}, i.Field, i.Extract)
	}
	return NewRegistry(b.Build(), 10*time.Second)
}

// A claim checks the cache's record and this process's claims; another namespace's owner
// is not named.
func TestClaimRefusesASegmentAnotherOwns(t *testing.T) {
	legacy := segment("team", "legacy", nil)
	legacy.Status.ID, legacy.Finalizers = "s-legacy", []string{usersv1alpha1.SegmentFinalizer}
	legacy.Status.Conditions = []metav1.Condition{{Type: usersv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: usersv1alpha1.ReasonSynced}}
	me := segment("team", "me", &usersv1alpha1.SegmentOwnership{ID: "s-mine", Account: "acct"})
	objs := []client.Object{me, legacy,
		segment("team", "other", &usersv1alpha1.SegmentOwnership{ID: "s-team", Account: "acct"}),
		segment("elsewhere", "far", &usersv1alpha1.SegmentOwnership{ID: "s-far", Account: "acct"})}
	for name, r := range map[string]*Registry{"informer indexes": registry(t, objs...), "field indexes": readerRegistry(t, objs...)} {
		t.Run(name, func(t *testing.T) { claimRefusesASegmentAnotherOwns(t, r, me) })
	}
}

func claimRefusesASegmentAnotherOwns(t *testing.T, r *Registry, me *usersv1alpha1.Segment) {
	r.Claim(context.Background(), segment("team", "earlier", nil), "s-claimed") //nolint:errcheck // set up

	for _, tc := range []struct {
		id, want string
	}{
		{"s-team", "Segment team/other"},
		{"s-far", "a Segment in another namespace"},
		{"s-legacy", "Segment team/legacy"},
		{"s-claimed", "Segment team/earlier"},
		{"s-mine", ""},
		{"s-free", ""},
	} {
		got, err := r.Claim(context.Background(), me, tc.id)
		if err != nil || got != tc.want {
			t.Errorf("Claim(%s) = %q, %v; want %q", tc.id, got, err, tc.want)
		}
	}
	// The free one is now this process's claim for "me": nobody else takes it.
	if got, _ := r.Claim(context.Background(), segment("team", "late", nil), "s-free"); got != "Segment team/me" {
		t.Errorf("a second claim of s-free: held by %q", got)
	}
	r.Release(context.Background(), segment("team", "late", nil), "s-free")
	if got, _ := r.Claim(context.Background(), segment("team", "late", nil), "s-free"); got != "Segment team/me" {
		t.Errorf("after another's Release, s-free is held by %q", got)
	}
	r.Release(context.Background(), me, "s-free")
	if got, _ := r.Claim(context.Background(), segment("team", "late", nil), "s-free"); got != "" {
		t.Errorf("after Release, s-free is held by %q", got)
	}
	r.Forget(context.Background(), segment("team", "late", nil))
	if got, _ := r.Owner(context.Background(), me, "s-free"); got != "" {
		t.Errorf("after Forget, s-free is owned by %q", got)
	}
}

// A segment another Segment's pending create may have made (its name, made within the
// create's deadline, in its account) is not free; others are.
func TestClaimWithHoldsWhatAPendingCreateMayHaveMade(t *testing.T) {
	pending := segment("team", "creating", &usersv1alpha1.SegmentOwnership{
		CreatePending: &usersv1alpha1.CreateIntent{At: metav1.NewMicroTime(intentAt), Name: "vip", Account: "acct"}})
	r := registry(t, pending)
	me := segment("team", "me", nil)
	for _, tc := range []struct {
		name    string
		account string
		listed  chatbot.Segment
		want    string
	}{
		{"made during the create", "acct", chatbot.Segment{ID: "1", Name: "vip", CreatedAt: chatbot.Timestamp{Time: intentAt.Add(time.Second)}},
			"Segment team/creating, whose interrupted create may have made it,"},
		{"within the clock skew before", "acct", chatbot.Segment{ID: "2", Name: "vip", CreatedAt: chatbot.Timestamp{Time: intentAt.Add(-4 * time.Second)}},
			"Segment team/creating, whose interrupted create may have made it,"},
		{"made after the deadline", "acct", chatbot.Segment{ID: "3", Name: "vip", CreatedAt: chatbot.Timestamp{Time: intentAt.Add(20 * time.Second)}}, ""},
		{"another name", "acct", chatbot.Segment{ID: "4", Name: "other", CreatedAt: chatbot.Timestamp{Time: intentAt}}, ""},
		{"another account", "acct-2", chatbot.Segment{ID: "5", Name: "vip", CreatedAt: chatbot.Timestamp{Time: intentAt}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bound := false
			got, err := r.ClaimWith(context.Background(), me, tc.account, tc.listed.ID, &tc.listed, func(record func()) error {
				bound = true
				record()
				return nil
			})
			if err != nil || got != tc.want || bound != (tc.want == "") {
				t.Errorf("ClaimWith = %q, %v, bound %v; want %q", got, err, bound, tc.want)
			}
			if _, claimed := r.claimedBy(tc.listed.ID); claimed != (tc.want == "") {
				t.Errorf("claimed: %v, want %v", claimed, tc.want == "")
			}
		})
	}
}

// Choose sees which candidates others own, and records only the one chosen.
func TestChooseRecordsTheChoice(t *testing.T) {
	r := registry(t, segment("team", "other", &usersv1alpha1.SegmentOwnership{ID: "a", Account: "acct"}))
	me := segment("team", "me", nil)
	var seen []bool
	id, err := r.Choose(context.Background(), me, func(ownedByOther func(string) bool) string {
		seen = append(seen, ownedByOther("a"), ownedByOther("b"))
		return "b"
	})
	if err != nil || id != "b" || len(seen) != 2 || !seen[0] || seen[1] {
		t.Fatalf("Choose = %q, %v; ownedByOther(a, b) = %v", id, err, seen)
	}
	if c, ok := r.claimedBy("b"); !ok || c.uid != me.UID {
		t.Errorf("b claimed by %+v, %v", c, ok)
	}
	if _, ok := r.claimedBy("a"); ok {
		t.Error("a, not chosen, was claimed")
	}
}

// What this process saw of a create: when it ended, and whether it made nothing for the
// intent of that time (not another's); Forget drops both.
func TestCreateMemos(t *testing.T) {
	r := registry(t)
	uid := types.UID("u")
	if _, ok := r.Ended(uid, intentAt); ok || r.MadeNothing(uid, intentAt) {
		t.Fatal("memos before any create")
	}
	r.CreateEnded(uid, intentAt)
	r.CreateMadeNothing(uid, intentAt)
	if _, ok := r.Ended(uid, intentAt); !ok || !r.MadeNothing(uid, intentAt) || r.MadeNothing(uid, intentAt.Add(time.Microsecond)) {
		t.Error("memos not kept, or kept for another intent")
	}
	if _, ok := r.Ended(uid, intentAt.Add(time.Microsecond)); ok {
		// another intent: one sent by another manager (a Segment moved and back) or before
		t.Error("the end of one intent's create taken for another's")
	}
	r.Resolved(uid)
	if _, ok := r.Ended(uid, intentAt); ok {
		t.Error("Resolved kept the end")
	}
	r.Forget(context.Background(), &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{UID: uid}})
	if r.MadeNothing(uid, intentAt) {
		t.Error("Forget kept the no-effect memo")
	}
	if got := r.Deadline(&usersv1alpha1.CreateIntent{At: metav1.NewMicroTime(intentAt)}); !got.Equal(intentAt.Add(10 * time.Second)) {
		t.Errorf("Deadline = %v", got)
	}
}

// The memos of creates past their deadline (and CreateSkew) go, pruneEvery memos at a
// time: no resolution needs them. Those of recent creates stay, whatever the status shows
// (a reconcile may read a cached copy that still holds the pending create).
func TestCreateMemosOfPastIntentsArePruned(t *testing.T) {
	r := registry(t)
	old, recent := time.Now().Add(-time.Hour), time.Now()
	r.CreateEnded("recent", recent)
	r.CreateMadeNothing("recent-refused", recent)
	r.CreateMadeNothing("old-refused", old)
	for i := range pruneEvery - 3 {
		r.CreateEnded(types.UID(fmt.Sprintf("old-%d", i)), old)
	}
	if _, ok := r.Ended("old-0", old); ok {
		t.Error("the end of a create past its deadline kept")
	}
	if r.MadeNothing("old-refused", old) {
		t.Error("the no-effect memo of a create past its deadline kept")
	}
	if _, ok := r.Ended("recent", recent); !ok || !r.MadeNothing("recent-refused", recent) {
		t.Error("the memos of a recent create dropped")
	}
}

// A name lock is held until unlocked, and unlocking twice is harmless.
func TestLockName(t *testing.T) {
	r := registry(t)
	me := segment("team", "me", nil)
	unlock, err := r.LockName(context.Background(), me, "acct", "vip")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		again, _ := r.LockName(context.Background(), me, "acct", "vip")
		again()
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a second holder got the name while it was held")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	unlock()
	<-got
}

// What a Segment holds against others: its owned segment, else an earlier version's hold
// not yet checked; an observation holds nothing.
func TestHeldID(t *testing.T) {
	legacy := segment("team", "legacy", nil)
	legacy.Status.ID, legacy.Finalizers = "s-legacy", []string{usersv1alpha1.SegmentFinalizer}
	legacy.Status.Conditions = []metav1.Condition{{Type: usersv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: usersv1alpha1.ReasonSynced}}
	observed := segment("team", "observed", &usersv1alpha1.SegmentOwnership{})
	observed.Status.ID = "s-observed"
	for _, tc := range []struct {
		seg  *usersv1alpha1.Segment
		want string
	}{
		{segment("team", "owner", &usersv1alpha1.SegmentOwnership{ID: "s-owned"}), "s-owned"},
		{legacy, "s-legacy"},
		{observed, ""},
		{segment("team", "new", nil), ""},
	} {
		if got := HeldID(tc.seg); got != tc.want {
			t.Errorf("HeldID(%s) = %q, want %q", tc.seg.Name, got, tc.want)
		}
	}
}
