package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/memberrecord"
	"github.com/segment-operator/segment-operator/internal/plan"
	"github.com/segment-operator/segment-operator/internal/text"
)

// Limits the API server sets: a condition message may hold 32768 characters; an event
// note over 1024 is refused.
const (
	maxConditionMessage = 32768
	maxEventNote        = 1024
)

// statusWriter writes a Segment's status only when it changed since the last write, so that
// a reconcile that finds nothing to do writes nothing.
type statusWriter struct {
	c       client.Client
	written usersv1alpha1.SegmentStatus
	// conditional: every write is conditional on the resourceVersion read, not only a
	// transition (with shards: a Segment relabelled to another manager mid-reconcile
	// changes its resourceVersion, and the old manager's write must not undo the new one's).
	conditional bool
}

func newStatusWriter(c client.Client, seg *usersv1alpha1.Segment) *statusWriter {
	return &statusWriter{c: c, written: *seg.Status.DeepCopy()}
}

// write patches the status subresource with what changed (a merge patch). A write that
// changes the ownership record is a transition, and is conditional on the resourceVersion
// read: a reconcile working from a cached copy older than the last transition is refused
// (Conflict, retried) instead of undoing it; with conditional, every write is.
func (w *statusWriter) write(ctx context.Context, seg *usersv1alpha1.Segment) error {
	if equality.Semantic.DeepEqual(w.written, seg.Status) {
		return nil
	}
	// The patch is computed from the status alone: the rest of the Segment (its members
	// above all) is the same on both sides, and marshalling it twice to find so was most of
	// the cost of a write.
	id := metav1.ObjectMeta{Name: seg.Name, Namespace: seg.Namespace, ResourceVersion: seg.ResourceVersion}
	base := &usersv1alpha1.Segment{TypeMeta: seg.TypeMeta, ObjectMeta: id, Status: w.written}
	sent := &usersv1alpha1.Segment{TypeMeta: seg.TypeMeta, ObjectMeta: id, Status: *seg.Status.DeepCopy()}
	patch := client.MergeFrom(base)
	if w.conditional || !equality.Semantic.DeepEqual(w.written.Ownership, seg.Status.Ownership) {
		patch = client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	}
	data, err := patch.Data(sent)
	if err != nil {
		return fmt.Errorf("status patch: %w", err)
	}
	// Sent through the metadata client, the answer is the Segment's metadata alone: decoding
	// the whole Segment again (its members above all) was a fifth of the cost of a write. Of
	// the answer only the resourceVersion is taken, for a later conditional write: the
	// reconcile goes on with the spec and generation it read. That version covers this
	// write's change alone because every write a reconcile makes before another (a claim,
	// a create's intent) changes the ownership record, and so was conditional on the
	// version read: keep it so.
	answered := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: usersv1alpha1.GroupVersion.String(), Kind: "Segment"},
		ObjectMeta: metav1.ObjectMeta{Name: seg.Name, Namespace: seg.Namespace},
	}
	if err := w.c.Status().Patch(ctx, answered, client.RawPatch(patch.Type(), data)); err != nil {
		return client.IgnoreNotFound(err)
	}
	seg.ResourceVersion = answered.ResourceVersion
	w.written = sent.Status // already a copy of seg.Status, and sent goes no further
	return nil
}

// progress is how kstatus, Flux and Argo CD should read a Segment that is not Ready.
type progress int

const (
	settled     progress = iota // neither: Ready says it all (synced, or observed)
	reconciling                 // Reconciling=True: the operator is working on it
	stalled                     // Stalled=True: it cannot go on until someone acts
	suspended                   // Suspended=True, and no Ready: the operator makes no claim
)

// outcome is what a reconcile came to: Ready, Reconciling and Stalled are set from it
// together, in setOutcome, and nowhere else.
type outcome struct {
	ready    bool
	reason   string
	msg      string
	progress progress
}

// setOutcome sets Ready, Reconciling, Stalled and Suspended from o; a Segment being
// deleted keeps Ready's reason Deleting. A suspended Segment has no Ready condition: it is
// settled where the spec put it (kstatus: Current, Argo CD: Suspended), but nothing says
// the remote segment matches, so kubectl wait --for=condition=Ready waits.
func setOutcome(seg *usersv1alpha1.Segment, o outcome) {
	// The generation is observed with its outcome, not with a write made on the way there
	// (a claim, a pending create): kstatus and Argo CD take a status for the current
	// generation at its word, and a stale Ready=True would pass for it.
	seg.Status.ObservedGeneration = seg.Generation
	msg := text.Cut(o.msg, maxConditionMessage)
	if o.reason != usersv1alpha1.ReasonDriftDetected {
		seg.Status.Plan = nil
	}
	if o.progress == suspended {
		setCondition(seg, usersv1alpha1.ConditionSuspended, true, o.reason, msg)
		for _, t := range []string{usersv1alpha1.ConditionReady, usersv1alpha1.ConditionReconciling, usersv1alpha1.ConditionStalled} {
			removeCondition(seg, t)
		}
		return
	}
	removeCondition(seg, usersv1alpha1.ConditionSuspended)
	if ready := meta.FindStatusCondition(seg.Status.Conditions, usersv1alpha1.ConditionReady); ready == nil ||
		ready.Reason != usersv1alpha1.ReasonDeleting || seg.DeletionTimestamp.IsZero() {
		setCondition(seg, usersv1alpha1.ConditionReady, o.ready, o.reason, msg)
	}
	switch o.progress {
	case reconciling:
		setCondition(seg, usersv1alpha1.ConditionReconciling, true, o.reason, msg)
		removeCondition(seg, usersv1alpha1.ConditionStalled)
	case stalled:
		setCondition(seg, usersv1alpha1.ConditionStalled, true, o.reason, msg)
		removeCondition(seg, usersv1alpha1.ConditionReconciling)
	default:
		removeCondition(seg, usersv1alpha1.ConditionReconciling)
		removeCondition(seg, usersv1alpha1.ConditionStalled)
	}
}

func setCondition(seg *usersv1alpha1.Segment, condType string, status bool, reason, msg string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&seg.Status.Conditions, metav1.Condition{
		Type: condType, Status: s, Reason: reason, Message: msg, ObservedGeneration: seg.Generation,
	})
}

func removeCondition(seg *usersv1alpha1.Segment, condType string) {
	meta.RemoveStatusCondition(&seg.Status.Conditions, condType)
}

// stallingError is an error the operator cannot resolve by retrying, with the reason to
// report: a stallError, or one of a concern's package (memberrecord.Error).
type stallingError interface {
	error
	StallReason() string
}

// stallError is a condition the operator cannot resolve by retrying: the user must act
// (change the spec, adopt a segment, remove a conflict).
type stallError struct{ reason, msg string }

func (e *stallError) Error() string { return e.msg }

// StallReason is the Segment's Ready reason.
func (e *stallError) StallReason() string { return e.reason }

func stall(reason, format string, args ...any) error {
	return &stallError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// waitError is a step that cannot be taken before a known time; nothing is wrong.
type waitError struct {
	after time.Duration
	msg   string
}

func (e *waitError) Error() string { return e.msg }

// note records a Normal event on the Segment.
func note(rec events.EventRecorder, seg *usersv1alpha1.Segment, reason, action, format string, args ...any) {
	rec.Eventf(seg, nil, corev1.EventTypeNormal, reason, action, "%s", eventNote(format, args...))
}

// warn records a Warning event on the Segment.
func warn(rec events.EventRecorder, seg *usersv1alpha1.Segment, reason, action, format string, args ...any) {
	rec.Eventf(seg, nil, corev1.EventTypeWarning, reason, action, "%s", eventNote(format, args...))
}

// eventNote formats an event's note and cuts it to what the API server accepts: it drops
// an event whose note is longer, and the arguments (names, IDs, API messages) may be long.
func eventNote(format string, args ...any) string {
	return text.Cut(fmt.Sprintf(format, args...), maxEventNote)
}

// forgetCreate drops the pending create at the user's request, and says what may be left.
func forgetCreate(rec events.EventRecorder, seg *usersv1alpha1.Segment) {
	i := seg.PendingCreate()
	warn(rec, seg, "CreateForgotten", "Create", "Forgot the create of a segment named %q attempted at %s (annotation %s): "+
		"any segment it made, named so and created then, is left in ChatBot", i.Name, intentTime(i), usersv1alpha1.AnnotationForgetCreate)
	seg.Status.Ownership.CreatePending = nil
}

// synced records the outcome of a managed Segment whose plan was carried out: the members
// the API cannot remove (reportNotRemovable), those the count says are missing
// (reportMissing), and Ready.
func synced(rec events.EventRecorder, seg *usersv1alpha1.Segment, observed *chatbot.Segment, drift plan.Drift, notRemovable, desired int) {
	reportNotRemovable(rec, seg, notRemovable)
	reportMissing(rec, seg, observed, drift)
	setOutcome(seg, outcome{ready: true, reason: usersv1alpha1.ReasonSynced,
		msg: fmt.Sprintf("Remote segment %s is named %q and has all %s", seg.OwnedID(), seg.RemoteName(),
			text.Plural(desired, "desired member"))})
}

// reportMissing reports members the count says are missing, and records a re-add of the
// desired members made for it (the plan made it when drift.Readd).
func reportMissing(rec events.EventRecorder, seg *usersv1alpha1.Segment, observed *chatbot.Segment, drift plan.Drift) {
	if drift.Unknown {
		return // the count says what we added: the last report stands until a listing says otherwise
	}
	record := seg.Status.MemberRecord
	switch {
	case drift.Readd && record != nil:
		record.Readded = &usersv1alpha1.MembersReadded{Missing: int32(drift.Missing), At: metav1.Now()}
	case drift.Settled && record != nil:
		record.Readded = nil
	}
	before := seg.Status.MissingMembers
	seg.Status.MissingMembers = int32(drift.Missing)
	if drift.Missing == 0 {
		removeCondition(seg, usersv1alpha1.ConditionMembersMissing)
		return
	}
	what := "they were added again"
	if !drift.Readd {
		what = "they were added again when the count first showed it, and are not again unless more go missing " +
			"(ChatBot may not take back users it deleted)"
	}
	msg := fmt.Sprintf("Remote segment %s counts %d members, fewer than the %s the operator added: members were removed, "+
		"or users deleted, outside the operator; %s. The count cannot tell which members, nor see a removal hidden by "+
		"members added outside the operator", seg.OwnedID(), observed.Users,
		text.Plural(drift.Missing+observed.Users, "desired member"), what)
	setCondition(seg, usersv1alpha1.ConditionMembersMissing, true, usersv1alpha1.ReasonRemovedOutside, msg)
	if drift.Readd || int32(drift.Missing) != before {
		warn(rec, seg, usersv1alpha1.ConditionMembersMissing, "AddMembers", "%s", msg)
	}
}

// reportNotRemovable says, visibly, how many removals from the desired members the API
// cannot carry out: it has no remove-member endpoint. The record keeps digests, not IDs, so
// it counts them exactly but cannot name them.
func reportNotRemovable(rec events.EventRecorder, seg *usersv1alpha1.Segment, extra int) {
	before := seg.Status.NotRemovableMembers
	seg.Status.NotRemovableMembers = int32(extra)
	if extra == 0 {
		removeCondition(seg, usersv1alpha1.ConditionMembersNotRemovable)
		return
	}
	msg := fmt.Sprintf("%s removed from spec.members or spec.membersFrom, but the ChatBot API cannot remove members: "+
		"they stay in remote segment %s until it is deleted (memberRemovalPolicy Recreate does that)",
		text.Plural(extra, "member was", "members were"), seg.OwnedID())
	setCondition(seg, usersv1alpha1.ConditionMembersNotRemovable, true, usersv1alpha1.ReasonRemovedFromSpec, msg)
	if int32(extra) != before {
		warn(rec, seg, usersv1alpha1.ConditionMembersNotRemovable, "RemoveMembers", "%s", msg)
	}
}

// resetRemote forgets what status says of the remote segment: it is gone, or about to be
// created anew.
func resetRemote(seg *usersv1alpha1.Segment) {
	seg.Status.ID = ""
	seg.Status.Name = ""
	seg.Status.RemoteMembers = 0
	seg.Status.CreatedAt = nil
	seg.Status.AddedMembers = nil
	seg.Status.NotRemovableMembers = 0
	seg.Status.MissingMembers = 0
	memberrecord.Reset(seg)
}
