package preview_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/memberrecord"
	"github.com/segment-operator/segment-operator/internal/plan"
	"github.com/segment-operator/segment-operator/internal/preview"
)

const managerNamespace = "segment-operator-system"

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return out
}

// observedState is a Segment as the controller leaves it after a reconcile: the remote
// segment recorded in status by plan.Record (the controller's own call), the members it
// added recorded by memberrecord.Records.Save (inline digests, or a ConfigMap of the
// manager's namespace when large).
type observedState struct {
	spec   usersv1alpha1.SegmentSpec
	remote *chatbot.Segment // the segment it owns, as the API reports it; nil: it owns none
	added  []string
	// readded is the last re-add of the desired members (status.memberRecord.readded).
	readded *usersv1alpha1.MembersReadded
}

func (o observedState) segment(t *testing.T, records *memberrecord.Records, uid string) *usersv1alpha1.Segment {
	t.Helper()
	seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "s-" + uid, UID: types.UID(uid)}}
	seg.Spec = o.spec
	seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{}
	if o.remote != nil {
		seg.Status.ID = o.remote.ID
		seg.Status.Ownership.ID = o.remote.ID
		plan.Record(seg, *o.remote)
		if err := records.Save(context.Background(), seg, ledger.New(o.added...)); err != nil {
			t.Fatal(err)
		}
		seg.Status.MemberRecord.Readded = o.readded
	}
	return seg
}

// controllerPlan is the plan the controller computes for the Segment when it finds remote
// (counted: a listing's own count) and desired. It mirrors SegmentReconciler.manage in
// internal/controller/reconciler.go, from "rec, err := r.records.Load(ctx, seg, desired)"
// to "p, drift := plan.Manage(seg, rec.Ledger, desired, observed, observed != nil &&
// acct.Counted(observed.ID))", and for an observe-only Segment observeOnly's "p :=
// plan.For(seg, rec.Ledger, desired, observed)".
func controllerPlan(t *testing.T, records *memberrecord.Records, seg *usersv1alpha1.Segment, desired []string,
	remote *chatbot.Segment, counted bool) (plan.Plan, plan.Drift) {
	t.Helper()
	rec, err := records.Load(context.Background(), seg, desired)
	if err != nil {
		t.Fatal(err)
	}
	if seg.ObserveOnly() {
		return plan.For(seg, rec.Ledger, desired, remote), plan.Drift{Unknown: true}
	}
	return plan.Manage(seg, rec.Ledger, desired, remote, remote != nil && counted)
}

// pluginRecord reads the record as kubectl segments plan does: from status, else from the
// ConfigMap status names (readable: the user may read the manager's namespace).
func pluginRecord(t *testing.T, c client.Reader, seg *usersv1alpha1.Segment, readable bool) preview.Record {
	t.Helper()
	r := preview.Record{}
	if rec := seg.Status.MemberRecord; rec != nil {
		r.Added, r.ConfigMap = int(rec.Added), rec.ConfigMap
	}
	l, _, inStatus, err := memberrecord.InStatus(seg)
	if err != nil {
		t.Fatal(err)
	}
	if inStatus {
		r.Ledger = l
		return r
	}
	if !readable {
		return r
	}
	cm := &corev1.ConfigMap{}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: managerNamespace, Name: r.ConfigMap}, cm); err != nil {
		t.Fatal(err)
	}
	l, remoteID, err := memberrecord.FromConfigMap(cm)
	if err != nil || remoteID != seg.OwnedID() {
		t.Fatalf("record ConfigMap: %v (records %s)", err, remoteID)
	}
	r.Ledger = l
	return r
}

// The controller and the plugin plan alike: for each state a Segment can be in once the
// controller has observed it, and each change to its spec, the plan preview computes from
// status alone (and, with --live, from a listing) is the plan the controller's next
// reconcile computes, and a record that cannot be read gives a bound that holds it.
func TestPreviewPlansAsTheController(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).
		WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}}).Build()
	records := memberrecord.New(managerNamespace, c, c, 0)
	seg := func(id, name string, users int) *chatbot.Segment {
		return &chatbot.Segment{ID: id, Name: name, Users: users}
	}
	abc := []string{"a", "b", "c"}
	large := ids("u", 600)
	recreate := usersv1alpha1.SegmentSpec{Name: "S", MemberRemovalPolicy: usersv1alpha1.MemberRemovalPolicyRecreate}
	observeOnly := usersv1alpha1.SegmentSpec{Name: "S", ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly}
	for _, tc := range []struct {
		name    string
		state   observedState
		spec    usersv1alpha1.SegmentSpec // the manifest's; Name "S" unless set
		desired []string
		// listed is the account's listing of the owned segment when it differs from what
		// status recorded (deleted outside the operator, members removed outside it).
		listed *chatbot.Segment
		gone   bool
		want   preview.Kind
	}{
		{name: "in sync", state: observedState{remote: seg("r1", "S", 3), added: abc}, desired: abc, want: preview.KindNone},
		{name: "renamed in the spec", state: observedState{remote: seg("r1", "Old", 3), added: abc}, desired: abc, want: preview.KindRename},
		{name: "members added to the spec", state: observedState{remote: seg("r1", "S", 3), added: abc},
			desired: []string{"a", "b", "c", "d", "e"}, want: preview.KindAdd},
		{name: "renamed, and members added", state: observedState{remote: seg("r1", "Old", 3), added: abc},
			desired: []string{"a", "b", "c", "d"}, want: preview.KindRename},
		{name: "members removed, Warn", state: observedState{remote: seg("r1", "S", 3), added: abc}, desired: []string{"a"},
			want: preview.KindNotRemovable},
		{name: "members removed, Recreate", state: observedState{spec: recreate, remote: seg("r1", "S", 3), added: abc},
			spec: recreate, desired: []string{"a"}, want: preview.KindRecreate},
		{name: "a new Segment", desired: abc, want: preview.KindCreate},
		{name: "no members", state: observedState{remote: seg("r1", "S", 0)}, want: preview.KindNone},
		{name: "adopted by spec.id, renamed", state: observedState{spec: usersv1alpha1.SegmentSpec{ID: "r1"}, remote: seg("r1", "Theirs", 5), added: abc},
			spec: usersv1alpha1.SegmentSpec{ID: "r1", Name: "S"}, desired: abc, want: preview.KindRename},
		{name: "a large record (a ConfigMap), members added", state: observedState{remote: seg("r1", "S", 600), added: large},
			desired: append(slices.Clone(large), ids("v", 10)...), want: preview.KindAdd},
		{name: "a large record, in sync", state: observedState{remote: seg("r1", "S", 600), added: large}, desired: large,
			want: preview.KindNone},
		{name: "observe-only, with changes", state: observedState{spec: observeOnly, remote: seg("r1", "Old", 2), added: []string{"a"}},
			spec: observeOnly, desired: abc, want: preview.KindNone},
		{name: "members removed outside the operator (--live: re-added)", state: observedState{remote: seg("r1", "S", 3), added: abc},
			desired: abc, listed: seg("r1", "S", 1), want: preview.KindAdd},
		{name: "re-added before, no more missing (--live)", state: observedState{remote: seg("r1", "S", 2), added: abc,
			readded: &usersv1alpha1.MembersReadded{Missing: 1}}, desired: abc, listed: seg("r1", "S", 2), want: preview.KindNone},
		{name: "deleted outside the operator (--live: created again)", state: observedState{remote: seg("r1", "S", 3), added: abc},
			desired: abc, gone: true, want: preview.KindCreate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := fmt.Sprintf("uid-%x", tc.name)
			live := tc.state.segment(t, records, uid)
			manifest := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Namespace: live.Namespace, Name: live.Name}, Spec: tc.spec}
			if manifest.Spec.Name == "" {
				manifest.Spec.Name = "S"
			}
			if tc.state.remote == nil {
				live = nil
			}
			// The controller reconciles the applied Segment: the manifest's spec, the status it wrote.
			applied := manifest.DeepCopy()
			if live != nil {
				applied.UID, applied.Status = live.UID, *live.Status.DeepCopy()
			}

			// From status alone: the controller observes what status recorded.
			if !tc.gone && tc.listed == nil {
				want, _ := controllerPlan(t, records, applied.DeepCopy(), tc.desired, tc.state.remote, true)
				got := preview.Decide(preview.Input{Manifest: manifest, Live: live, Members: tc.desired,
					Record: pluginRecord(t, c, orEmpty(live), true)})
				if got.Plan == nil || !reflect.DeepEqual(*got.Plan, want) {
					t.Fatalf("from status: preview plans %+v, the controller %+v", got.Plan, want)
				}
				if got.Kind != tc.want {
					t.Errorf("from status: kind %s, want %s (%s)", got.Kind, tc.want, got.Text)
				}
				// Not readable (a ConfigMap of the manager's namespace): a bound that holds the
				// controller's plan.
				if live != nil && live.Status.MemberRecord != nil && live.Status.MemberRecord.ConfigMap != "" {
					got := preview.Decide(preview.Input{Manifest: manifest, Live: live, Members: tc.desired,
						Record: pluginRecord(t, c, live, false)})
					if n := len(want.Add); n < got.MembersToAdd.Min || n > got.MembersToAdd.Max {
						t.Errorf("not readable: %d to add, outside %+v", n, got.MembersToAdd)
					}
					if n := want.NotRemovable; n < got.MembersNotRemovable.Min || n > got.MembersNotRemovable.Max {
						t.Errorf("not readable: %d not removable, outside %+v", n, got.MembersNotRemovable)
					}
				}
			}

			// --live: the controller and the plugin see the same listing.
			var account []chatbot.Segment
			observed := tc.state.remote
			if tc.listed != nil {
				observed = tc.listed
			}
			if tc.gone {
				observed = nil
			}
			if observed != nil {
				account = append(account, *observed, chatbot.Segment{ID: "other", Name: "S"})
			}
			want, wantDrift := controllerPlan(t, records, applied.DeepCopy(), tc.desired, observed, true)
			got := preview.Decide(preview.Input{Manifest: manifest, Live: live, Members: tc.desired,
				Record: pluginRecord(t, c, orEmpty(live), true), Listed: true, Account: account})
			if got.Plan == nil || !reflect.DeepEqual(*got.Plan, want) || got.Drift != wantDrift {
				t.Fatalf("--live: preview plans %+v (%+v), the controller %+v (%+v)", got.Plan, got.Drift, want, wantDrift)
			}
			if got.Kind != tc.want {
				t.Errorf("--live: kind %s, want %s (%s)", got.Kind, tc.want, got.Text)
			}
		})
	}
}

func orEmpty(seg *usersv1alpha1.Segment) *usersv1alpha1.Segment {
	if seg == nil {
		return &usersv1alpha1.Segment{}
	}
	return seg
}
