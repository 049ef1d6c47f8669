package controller

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
	"github.com/segment-operator/segment-operator/internal/ownership"
	"github.com/segment-operator/segment-operator/internal/remote/remotetest"
)

// The create step, without a control plane: a fake client stands in for the API server
// and the simulator for ChatBot. The intent is written (with the finalizer) before the
// call; what the call made decides what the Segment records, and what this process
// remembers for resolving it.
func TestCreate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults simulator.Faults
		// made: the call made a segment; owned: the Segment records it as its own.
		made, owned bool
		// pending: the intent stays, to be resolved from a listing; madeNothing: this
		// process knows the call made nothing.
		pending, madeNothing bool
	}{
		{name: "created: the ID replaces the intent", made: true, owned: true},
		{name: "refused (429): certainly nothing made, the intent goes",
			faults:      simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointCreate}, FailNext: 1, ErrorCode: 429},
			madeNothing: true},
		{name: "the answer lost: the intent stays, to be resolved",
			faults: simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointCreate}, LoseResponseRate: 1},
			made:   true, pending: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, acct := remotetest.Account(t, "team")
			if err := sim.SetFaults(tc.faults); err != nil {
				t.Fatal(err)
			}

			scheme := runtime.NewScheme()
			_ = usersv1alpha1.AddToScheme(scheme)
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "vip", Namespace: "team", UID: "u-vip"},
				Spec:   usersv1alpha1.SegmentSpec{Name: "VIP customers"},
				Status: usersv1alpha1.SegmentStatus{Ownership: &usersv1alpha1.SegmentOwnership{}}}
			b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(seg).WithStatusSubresource(seg)
			for _, i := range ownership.Indexes() {
				b = b.WithIndex(&usersv1alpha1.Segment{}, i.Field, i.Extract)
			}
			c := b.Build()
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(seg), seg); err != nil {
				t.Fatal(err)
			}
			r := &SegmentReconciler{Client: c, Recorder: events.NewFakeRecorder(10), owners: ownership.NewRegistry(c, time.Second)}

			err := r.create(context.Background(), seg, acct, newStatusWriter(c, seg), "")
			if (err == nil) != tc.owned {
				t.Fatalf("create: %v", err)
			}

			stored := &usersv1alpha1.Segment{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(seg), stored); err != nil {
				t.Fatal(err)
			}
			intent := stored.PendingCreate()
			if !controllerutil.ContainsFinalizer(stored, usersv1alpha1.SegmentFinalizer) || intent == nil ||
				intent.Name != "VIP customers" || intent.Account != acct.ID {
				t.Fatalf("stored before the call: finalizers %q, intent %+v", stored.Finalizers, intent)
			}
			remoteSegs := sim.Segments()
			if made := len(remoteSegs) == 1 && remoteSegs[0].Name == "VIP customers"; made != tc.made || len(remoteSegs) > 1 {
				t.Fatalf("in ChatBot: %+v, want one made: %v", remoteSegs, tc.made)
			}
			if tc.owned {
				id := remoteSegs[0].ID
				if o := seg.Status.Ownership; o.ID != id || o.Account != acct.ID || o.CreatePending != nil || seg.Status.ID != id {
					t.Errorf("ownership %+v, status.id %q: want %s, recorded for the final write", o, seg.Status.ID, id)
				}
				if other, _ := r.owners.Claim(context.Background(), &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{
					Name: "late", Namespace: "team", UID: "u-late"}}, id); other != "Segment team/vip" {
					t.Errorf("another Segment's claim of %s: held by %q, want team/vip", id, other)
				}
				if _, found := acct.Lookup(id); !found {
					t.Error("the account's shared listing does not show the segment made")
				}
			}
			if got := seg.PendingCreate() != nil; got != tc.pending {
				t.Errorf("intent kept in memory: %v, want %v", got, tc.pending)
			}
			if got := r.owners.MadeNothing(seg.UID, intent.At.Time); got != tc.madeNothing {
				t.Errorf("made nothing, as this process knows: %v, want %v", got, tc.madeNothing)
			}
			if _, ended := r.owners.Ended(seg.UID, intent.At.Time); ended != (tc.made && !tc.madeNothing) {
				t.Errorf("the call's end noted: %v", ended)
			}
			if err != nil {
				if _, ok := chatbot.AsAPIError(err); !ok {
					t.Errorf("the API's error is not returned as such: %v", err)
				}
			}
		})
	}
}
