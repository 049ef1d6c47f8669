package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/ownership"
	"github.com/segment-operator/segment-operator/internal/plan"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/text"
)

// requestSpacing is how often, at most, reconcile requests force a listing of one account:
// every request seen before a forced listing began takes that one, and a request seen after
// waits, at most this long, for the next.
const requestSpacing = 5 * time.Second

// Reconcile tells the story of one Segment: read it, handle its deletion, then manage its
// remote segment (or, observe-only, plan), and write the outcome to status once, at the end.
func (r *SegmentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	seg := &usersv1alpha1.Segment{}
	if err := r.Get(ctx, req.NamespacedName, seg); err != nil {
		if apierrors.IsNotFound(err) {
			r.gone(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Shard.Owns(seg) {
		// Another shard's (moved): the cache holds only a cut of it. What this manager
		// remembers of it goes, now that no reconcile of it is under way here: its member
		// record (read again should it come back, as the other writes it meanwhile), its
		// charge as this manager's own, its claims in this process (the Lease stays: the
		// Segment still holds it).
		r.records.Handover(seg)
		r.owners.Handover(seg.UID)
		return ctrl.Result{}, nil
	}
	st := newStatusWriter(r.Client, seg)
	st.conditional = r.Shard != nil // another manager may have it since (a relabelling)
	if old := migrate(seg); old != (legacy{}) {
		if err := upgrade(ctx, r.owners, r.Recorder, seg, old); err != nil {
			return ctrl.Result{}, err // no status write: an earlier version's hold must survive to the next try
		}
	}
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithValues("remoteID", seg.OwnedID()))
	if !seg.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, seg, st)
	}

	// From here every path ends in one status write, of the outcome or of the failure.
	leave := func() {}
	request := "" // the reconcile request this reconcile answers
	defer func() {
		if p := recover(); p != nil {
			leave()
			panic(p) // nothing is written of a reconcile cut short
		}
		if request != "" {
			// Answered whatever the outcome, as Flux does: a tool waiting on it then reads
			// the conditions. Not when nothing is written (turned away, a Kubernetes API
			// error): the request is still to be answered by the retry.
			seg.Status.LastHandledReconcileAt = request
		}
		if err != nil {
			result, err = r.fail(ctx, seg, st, err)
		} else {
			err = st.write(ctx, seg)
		}
		leave()
	}()
	if seg.Spec.Suspend {
		setOutcome(seg, outcome{reason: usersv1alpha1.ReasonSuspended, progress: suspended,
			msg: "Reconciliation is suspended (spec.suspend): no remote call is made"})
		return ctrl.Result{}, nil
	}
	if value, fresh := requested(seg); fresh {
		request = value
	}
	acct, leave, err := r.enter(ctx, seg)
	if err != nil {
		return ctrl.Result{}, err
	}
	if request != "" {
		// Every step below then observes the shared listing, now begun after the request was
		// seen (shared with every request of this account seen before it began): no older
		// than any maxAge, and begun after any time a claim asks for.
		if err := acct.ListOnRequest(ctx, string(seg.UID), request, requestSpacing, r.DriftInterval); err != nil {
			if wait := (*remote.RequestWait)(nil); errors.As(err, &wait) {
				// Back for the account's next listing; no worker waits meanwhile, and nothing
				// is written (a turn, not an outcome).
				return ctrl.Result{}, &turnError{after: wait.After, msg: "Waiting for the account's next listing on request: " + err.Error()}
			}
			return ctrl.Result{}, err
		}
		logf.FromContext(ctx).V(1).Info("reconcile requested", "requestedAt", request)
	}
	if seg.ObserveOnly() {
		return ctrl.Result{RequeueAfter: r.DriftInterval}, r.observeOnly(ctx, seg, acct)
	}
	return ctrl.Result{RequeueAfter: r.DriftInterval}, r.manage(ctx, seg, acct, st)
}

// gone forgets a deleted Segment in the shares of the workers: should it wait in a line,
// its turn (or a place kept for it, woken) goes to the next at once.
func (r *SegmentReconciler) gone(namespace, name string) {
	caller := callerOf(namespace, name)
	r.shares.Drop(namespace, caller)
	r.Accounts.Drop(caller)
}

// enter finds the Segment's account and admits the reconcile into its share of the
// workers, and its namespace's; leave must be called when done.
func (r *SegmentReconciler) enter(ctx context.Context, seg *usersv1alpha1.Segment) (*remote.Account, func(), error) {
	acct, err := r.credentials.Account(ctx, seg)
	if err != nil {
		return nil, func() {}, err
	}
	leave, err := admit(seg, acct, r.shares)
	return acct, leave, err
}

// manage makes the owned remote segment match the spec: observe (claim one if the Segment
// owns none), decide (plan.Manage), act (apply), and record the outcome.
func (r *SegmentReconciler) manage(ctx context.Context, seg *usersv1alpha1.Segment, acct remote.External, st *statusWriter) error {
	if owned := seg.OwnedID(); owned != "" && seg.Spec.ID != "" && seg.Spec.ID != owned {
		return stall(usersv1alpha1.ReasonConflict, "spec.id names remote segment %s, but this Segment already manages %s: "+
			"a Segment does not move to another segment. To manage %s, create a new Segment with that spec.id "+
			"(and delete this one, with deletionPolicy Orphan to keep %s)", seg.Spec.ID, owned, seg.Spec.ID, owned)
	}
	desired, err := desiredMembers(ctx, r.sources, seg)
	if err != nil {
		return err // before any claim or create: nothing is made for members not known
	}
	if seg.OwnedID() == "" {
		if err := r.claim(ctx, seg, acct, st); err != nil {
			return err
		}
	}

	// Observe.
	var observed *chatbot.Segment
	if id := seg.OwnedID(); id != "" {
		s, found, err := acct.Observe(ctx, id, r.DriftInterval, confirmGoneAfter(seg))
		switch {
		case err != nil:
			return err
		case !found && accountMoved(seg, acct.AccountID()):
			return errAccountMoved(seg, acct.AccountID())
		case !found && seg.Spec.ID != "":
			return stall(usersv1alpha1.ReasonRemoteNotFound, "Remote segment %s named by spec.id does not exist; "+
				"an adopted segment is not recreated. Recreate the Segment without spec.id to make a new one", id)
		case !found:
			warn(r.Recorder, seg, usersv1alpha1.ReasonRecreated, "Recreate",
				"Remote segment %s no longer exists (deleted outside the operator); creating it again", id)
		default:
			if err := rebind(ctx, r.owners, seg, acct.AccountID()); err != nil {
				return err
			}
			observed = &s
			plan.Record(seg, s)
		}
	}
	rec, err := r.records.Load(ctx, seg, desired)
	if err != nil {
		return err
	}
	if rec.Lost {
		warn(r.Recorder, seg, "MemberRecordLost", "AddMembers", "The record of the members added to remote segment %s is gone "+
			"(its ConfigMap in the manager's namespace was deleted): the desired members are added again, and members "+
			"removed from the spec before now are no longer counted", seg.OwnedID())
	}
	if rec.Migrated && observed != nil {
		// An earlier version's status.addedMembers, kept compact from now on.
		if err := r.records.Save(ctx, seg, rec.Ledger); err != nil {
			return err
		}
	}

	// Decide, act, record.
	p, drift := plan.Manage(seg, rec.Ledger, desired, observed, observed != nil && acct.Counted(observed.ID))
	if err := r.apply(ctx, seg, acct, st, p, rec.Ledger); err != nil {
		return err
	}
	synced(r.Recorder, seg, observed, drift, p.NotRemovableAfter(), len(desired))
	return nil
}

// apply carries out a plan for the Segment's owned segment.
func (r *SegmentReconciler) apply(ctx context.Context, seg *usersv1alpha1.Segment, acct remote.External, st *statusWriter,
	p plan.Plan, added *ledger.Ledger) error {
	created, reason := "", "Created"
	switch {
	case p.Create:
		if err := r.create(ctx, seg, acct, st, ""); err != nil {
			return err
		}
		added = ledger.New()
		created = fmt.Sprintf("Created remote segment %s named %q", seg.OwnedID(), seg.RemoteName())
	case p.Recreate:
		old := seg.OwnedID()
		if err := deleteSegment(ctx, r.Recorder, r.owners, seg, acct, old); err != nil {
			return err
		}
		// Released: should the create not follow, the Segment owns nothing, rather than a
		// segment that would look deleted outside the operator.
		resetRemote(seg)
		seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{}
		why := fmt.Sprintf("Deleted remote segment %s to remove %s (memberRemovalPolicy Recreate)", old, text.Plural(p.NotRemovable, "member"))
		if err := r.create(ctx, seg, acct, st, why); err != nil {
			return err
		}
		added = ledger.New()
		created, reason = fmt.Sprintf("%s and created %s", why, seg.OwnedID()), "RecreatedToRemoveMembers"
	case p.RenameTo != "":
		id := seg.OwnedID()
		if err := acct.Rename(ctx, id, p.RenameTo); err != nil {
			return err
		}
		seg.Status.Name = p.RenameTo
		note(r.Recorder, seg, "Renamed", "Rename", "Renamed remote segment %s from %q to %q", id, p.RenameFrom, p.RenameTo)
		logf.FromContext(ctx).Info("renamed remote segment", "from", p.RenameFrom, "to", p.RenameTo)
	}
	n, err := r.addMembers(ctx, seg, acct, added, p.Add)
	switch {
	case created != "": // one event for a create and its first members
		note(r.Recorder, seg, reason, "Create", "%s, with %s", created, text.Plural(n, "member"))
	case n > 0:
		note(r.Recorder, seg, "MembersAdded", "AddMembers", "Added %s to remote segment %s", text.Plural(n, "member"), seg.OwnedID())
	}
	return err
}

// create creates the remote segment. The create call is not idempotent, so the attempt is
// recorded first (status.ownership.createPending, in the same write that forgets a segment
// it replaces): if the ID never reaches status, because the manager died or the response
// was lost, the next reconcile resolves what the call made instead of making another. The
// new ID replaces the intent with the reconcile's final status write; a create that
// certainly had no effect removes the intent in that write instead. why says why a segment
// is replaced, if one is. The name lock is held from before the intent is recorded until
// the new ID is claimed, so that no Segment choosing a segment by this name meanwhile can
// take it.
func (r *SegmentReconciler) create(ctx context.Context, seg *usersv1alpha1.Segment, acct remote.External, st *statusWriter, why string) error {
	if err := acct.CheckCreate(); err != nil {
		return err // no intent to record for a call that cannot go
	}
	if err := ensureFinalizer(ctx, r.Client, seg); err != nil {
		return err
	}
	// Held from before the intent is recorded: a Segment of another manager (shard) that
	// chooses by this name sees the intent, or waits.
	unlock, err := r.owners.LockName(ctx, seg, acct.AccountID(), seg.RemoteName())
	if err != nil {
		return err
	}
	defer unlock()
	intent := newIntent(seg, acct)
	if replaced := seg.OwnedID(); replaced != "" && why == "" {
		why = fmt.Sprintf("Remote segment %s is gone", replaced)
	}
	msg := fmt.Sprintf("Creating remote segment %q", intent.Name)
	if why != "" {
		msg = why + "; creating a new one"
	}
	resetRemote(seg)
	seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{CreatePending: intent}
	setOutcome(seg, outcome{reason: usersv1alpha1.ReasonCreating, msg: msg, progress: reconciling})
	if err := st.write(ctx, seg); err != nil { // the intent: one conditional write
		return fmt.Errorf("record create intent: %w", err)
	}

	// No create is sent later than CreateTimeout after its intent: a process that did not
	// see it end (a restart, a new leader) waits that long before it resolves it.
	cctx, cancel := context.WithDeadline(ctx, r.owners.Deadline(intent))
	defer cancel()
	created, err := acct.Create(cctx, intent.Name)
	if apiErr, ok := chatbot.AsAPIError(err); ok && apiErr.NoEffect() {
		seg.Status.Ownership.CreatePending = nil // certainly made nothing
		r.owners.CreateMadeNothing(seg.UID, intent.At.Time)
		return err
	}
	r.owners.CreateEnded(seg.UID, intent.At.Time)
	if err != nil {
		return err
	}
	// An API is trusted with its answer only for a segment no other Segment owns: one a
	// tenant runs (an allowed apiURL) could answer with another namespace's segment ID.
	if owner, err := r.owners.Claim(ctx, seg, created.ID); err != nil {
		return err // the pending create stays, and is resolved from a listing
	} else if owner != "" {
		seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{}
		return stall(usersv1alpha1.ReasonConflict, "The API answered this Segment's create with remote segment %s, which %s "+
			"manages: this Segment leaves it alone", created.ID, owner)
	}
	unlock()
	// Recorded by the reconcile's final status write.
	seg.Status.ID = created.ID
	seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{ID: created.ID, Account: acct.AccountID()}
	plan.Record(seg, created)
	logf.FromContext(ctx).Info("created remote segment", "remoteID", created.ID)
	return nil
}

// addMembers adds users (sorted, so that identical sets of several Segments merge) to the
// owned segment, records them in added, and returns how many were added. What was added is
// recorded even when a later batch fails, so no member is sent twice and none is
// forgotten; nothing is sent that the record could not keep.
func (r *SegmentReconciler) addMembers(ctx context.Context, seg *usersv1alpha1.Segment, acct remote.External, added *ledger.Ledger,
	users []string) (int, error) {
	if len(users) == 0 {
		return 0, nil
	}
	next := added.Clone()
	next.Add(users...)
	if err := r.records.Reserve(ctx, seg, next); err != nil {
		return 0, err
	}
	id := seg.OwnedID()
	n, err := acct.AddMembers(ctx, id, users, added)
	if n > 0 {
		if observed, ok := acct.Lookup(id); ok {
			seg.Status.RemoteMembers = int32(observed.Users)
		}
		logf.FromContext(ctx).Info("added members", "count", n)
		// Recorded even when the reconcile is being cancelled (a shutdown, a lost lease): the
		// members are in ChatBot, and would be sent again.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		saveErr := r.records.Save(sctx, seg, added)
		cancel()
		if saveErr != nil {
			return n, saveErr
		}
	}
	return n, err
}

// observeOnly finds the remote segment without claiming it, and records in status.plan
// what Manage would change, like a plan. It never calls a write endpoint and never adds the
// finalizer. A Segment that owns a segment (it managed before) shows that one.
func (r *SegmentReconciler) observeOnly(ctx context.Context, seg *usersv1alpha1.Segment, acct remote.External) error {
	desired, err := desiredMembers(ctx, r.sources, seg)
	if err != nil {
		return err
	}
	observed, err := find(ctx, r.owners, seg, acct, r.DriftInterval)
	if err != nil {
		return err
	}
	if observed != nil {
		seg.Status.ID = observed.ID
		plan.Record(seg, *observed)
	} else {
		resetRemote(seg)
	}
	rec, err := r.records.Load(ctx, seg, desired)
	if err != nil {
		return err
	}
	p := plan.For(seg, rec.Ledger, desired, observed)
	seg.Status.NotRemovableMembers = int32(p.NotRemovable)
	summary := p.Summary()
	if summary == "" {
		seg.Status.Plan = nil
		setOutcome(seg, outcome{ready: true, reason: usersv1alpha1.ReasonObserved,
			msg: fmt.Sprintf("ObserveOnly: remote segment %s matches the spec", observed.ID)})
		return nil
	}
	seg.Status.Plan = p.Status()
	// Ready: the observation is current. Observe-only never acts on drift, so it is a
	// settled state for GitOps tools, not work under way; the reason and status.plan say it.
	setOutcome(seg, outcome{ready: true, reason: usersv1alpha1.ReasonDriftDetected, msg: "ObserveOnly: nothing is changed; managing would " + summary})
	return nil
}

// finalize deletes the owned remote segment (policy Delete), or what a pending create
// made, or leaves it (Orphan, ObserveOnly), then releases the Segment. A suspended Segment
// is held until resumed. A Segment that owns nothing is released without a remote call,
// whoever put the finalizer on.
func (r *SegmentReconciler) finalize(ctx context.Context, seg *usersv1alpha1.Segment, st *statusWriter) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		return ctrl.Result{}, nil
	}
	if forgetRequested(seg) {
		forgetCreate(r.Recorder, seg)
	}
	switch plan.OnDelete(seg) {
	case plan.HoldSuspended:
		msg := "The Segment is being deleted but is suspended: its remote segment is kept, and so is the finalizer, " +
			"until spec.suspend is false (then it is deleted) or spec.deletionPolicy is Orphan"
		setOutcome(seg, outcome{reason: usersv1alpha1.ReasonSuspended, msg: msg, progress: suspended})
		return ctrl.Result{}, st.write(ctx, seg)
	case plan.DeleteRemote:
		if err := r.deleteOwned(ctx, seg); err != nil {
			setOutcome(seg, outcome{reason: usersv1alpha1.ReasonDeleting, msg: "Cannot delete the remote segment yet: " + err.Error()})
			return r.fail(ctx, seg, st, err)
		}
	case plan.LeaveOwned:
		note(r.Recorder, seg, "Orphaned", "Delete", "Left remote segment %s in ChatBot (deletionPolicy %s, managementPolicy %s)",
			seg.OwnedID(), seg.DeletionPolicyOrDefault(), seg.Spec.ManagementPolicy)
	case plan.LeavePending:
		i := seg.PendingCreate()
		warn(r.Recorder, seg, "Orphaned", "Delete", "Left in ChatBot whatever the create of a segment named %q attempted at %s made "+
			"(deletionPolicy %s, managementPolicy %s): look for a segment of that name created then", i.Name, intentTime(i),
			seg.DeletionPolicyOrDefault(), seg.Spec.ManagementPolicy)
	}
	if err := r.records.Drop(ctx, seg); err != nil {
		return ctrl.Result{}, err
	}
	if err := patchMetadata(ctx, r.Client, seg, func(s *usersv1alpha1.Segment) {
		controllerutil.RemoveFinalizer(s, usersv1alpha1.SegmentFinalizer)
	}); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	r.owners.Forget(ctx, seg)
	return ctrl.Result{}, nil
}

// deleteOwned deletes the segment the Segment owns, or the one its pending create made.
func (r *SegmentReconciler) deleteOwned(ctx context.Context, seg *usersv1alpha1.Segment) error {
	acct, leave, err := r.enter(ctx, seg)
	defer leave()
	if err != nil {
		return err
	}
	id := seg.OwnedID()
	if id != "" && accountMoved(seg, acct.AccountID()) {
		// A delete in the wrong account answers 404, which must not pass for success.
		if _, found, err := acct.Observe(ctx, id, r.DriftInterval, goneAfter(seg)); err != nil {
			return err
		} else if !found {
			return errAccountMoved(seg, acct.AccountID())
		}
		if err := rebind(ctx, r.owners, seg, acct.AccountID()); err != nil {
			return err
		}
	}
	if intent := seg.PendingCreate(); intent != nil {
		if id, err = r.resolve(ctx, seg, acct, intent, ""); err != nil {
			return err
		}
	}
	if id == "" {
		return nil
	}
	return deleteSegment(ctx, r.Recorder, r.owners, seg, acct, id)
}

// fail records err in status and decides, by classify, when to try again. A reconcile
// turned away by its share of the workers writes nothing: it did no remote work, and a
// turn-away is not an outcome.
func (r *SegmentReconciler) fail(ctx context.Context, seg *usersv1alpha1.Segment, st *statusWriter, err error) (ctrl.Result, error) {
	v := classify(err, r.DriftInterval)
	switch {
	case v.turn:
		logf.FromContext(ctx).V(1).Info("waiting for its turn", "why", err.Error(), "retryIn", v.after)
		return ctrl.Result{RequeueAfter: v.after}, nil
	case v.reason == "":
		return ctrl.Result{}, err // a Kubernetes API error or similar: controller-runtime backs off and logs it
	}
	o := outcome{reason: v.reason, msg: v.err.Error(), progress: reconciling}
	if v.stalled {
		o.progress = stalled
		if prev := meta.FindStatusCondition(st.written.Conditions, usersv1alpha1.ConditionStalled); prev == nil || prev.Reason != v.reason {
			warn(r.Recorder, seg, v.reason, "Reconcile", "%s", v.err.Error())
		}
	} else {
		o.msg = "Retrying: " + o.msg
	}
	setOutcome(seg, o)
	result := ctrl.Result{RequeueAfter: v.after}
	logf.FromContext(ctx).Info("reconcile failed", "reason", v.reason, "error", v.err.Error(), "retryIn", result.RequeueAfter)
	if werr := st.write(ctx, seg); werr != nil {
		return ctrl.Result{}, errors.Join(v.err, werr)
	}
	if v.backoff {
		return result, err
	}
	return result, nil
}

// deleteSegment deletes remote segment id; one that is already gone is fine.
func deleteSegment(ctx context.Context, rec events.EventRecorder, owners *ownership.Registry, seg *usersv1alpha1.Segment,
	acct remote.External, id string) error {
	gone, err := acct.Delete(ctx, id)
	switch {
	case err != nil:
		return err
	case gone:
		note(rec, seg, "AlreadyDeleted", "Delete", "Remote segment %s was already gone", id)
	default:
		note(rec, seg, "Deleted", "Delete", "Deleted remote segment %s", id)
		logf.FromContext(ctx).Info("deleted remote segment", "remoteID", id)
	}
	owners.Release(ctx, seg, id)
	return nil
}
