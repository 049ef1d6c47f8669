package controller

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// planSample is how many members to add status.plan names.
const planSample = 10

// plan observes without writing (managementPolicy ObserveOnly) and records in status.plan
// what Manage would change, like a plan. It never calls a write endpoint and never adds the
// finalizer. Members to add are the desired ones the operator has not added itself: the
// API cannot list members, so some may already be there.
func (r *SegmentReconciler) plan(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) error {
	observed, found, err := r.find(ctx, seg, acct)
	if err != nil {
		return err
	}
	plan := &usersv1alpha1.SegmentPlan{}
	if found {
		// Observing records nothing as held: status.id goes unclaimed, and Manage claims it
		// with the ownership check (see holds). A Segment that has the finalizer (it managed
		// before, or a create is pending) keeps the ID it holds, and records no other.
		if observed.ID == seg.Status.ID || !controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
			seg.Status.ID = observed.ID
			recordObserved(seg, observed)
		}
		if observed.Name != seg.RemoteName() {
			plan.RenameFrom, plan.RenameTo = observed.Name, seg.RemoteName()
		}
	} else {
		resetRemote(seg)
		plan.Create = true
	}
	missing := difference(seg.Spec.Members, seg.Status.AddedMembers)
	plan.MembersToAdd = int32(len(missing))
	plan.MembersToAddSample = missing[:min(len(missing), planSample)]
	plan.MembersNotRemovable = int32(len(difference(seg.Status.AddedMembers, seg.Spec.Members)))
	seg.Status.NotRemovableMembers = plan.MembersNotRemovable

	removeCondition(seg, usersv1alpha1.ConditionReconciling)
	removeCondition(seg, usersv1alpha1.ConditionStalled)
	if summary := summarize(plan); summary != "" {
		seg.Status.Plan = plan
		setCondition(seg, usersv1alpha1.ConditionReady, false, usersv1alpha1.ReasonDriftDetected,
			"ObserveOnly: nothing is changed; managing would "+summary)
		return nil
	}
	seg.Status.Plan = nil
	setCondition(seg, usersv1alpha1.ConditionReady, true, usersv1alpha1.ReasonObserved,
		fmt.Sprintf("ObserveOnly: remote segment %s matches the spec", observed.ID))
	return nil
}

// find locates the remote segment without claiming it: by spec.id or status.id, else the
// only one with the desired name under AdoptByName.
func (r *SegmentReconciler) find(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) (chatbot.Segment, bool, error) {
	if id := cmp.Or(seg.Spec.ID, seg.Status.ID); id != "" {
		observed, found, err := r.observe(ctx, acct, id)
		if err == nil && !found && seg.Spec.ID != "" {
			err = stall(usersv1alpha1.ReasonRemoteNotFound, "Remote segment %s named by spec.id does not exist", seg.Spec.ID)
		}
		return observed, found, err
	}
	if seg.Spec.AdoptionPolicy != usersv1alpha1.AdoptionPolicyAdoptByName {
		return chatbot.Segment{}, false, nil
	}
	id, err := r.findByName(ctx, seg, acct)
	if err != nil || id == "" {
		return chatbot.Segment{}, false, err
	}
	observed, found := acct.Observations.Lookup(id)
	return observed, found, nil
}

// summarize says in words what a plan would change; "" when nothing.
func summarize(p *usersv1alpha1.SegmentPlan) string {
	var parts []string
	if p.Create {
		parts = append(parts, "create the segment")
	}
	if p.RenameTo != "" {
		parts = append(parts, fmt.Sprintf("rename it from %q to %q", p.RenameFrom, p.RenameTo))
	}
	if p.MembersToAdd > 0 {
		parts = append(parts, fmt.Sprintf("add %d members", p.MembersToAdd))
	}
	if p.MembersNotRemovable > 0 {
		parts = append(parts, fmt.Sprintf("report %d members the API cannot remove", p.MembersNotRemovable))
	}
	return strings.Join(parts, ", ")
}
