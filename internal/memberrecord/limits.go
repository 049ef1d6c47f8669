package memberrecord

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/metadata"
	"github.com/segment-operator/segment-operator/internal/quota"
)

// Reserve makes sure that l can be recorded as the Segment's record, and charges its
// namespace for it, or says why it cannot be: before members are sent, so that none is
// sent that could not be recorded (and would be sent again).
func (m *Records) Reserve(ctx context.Context, seg *usersv1alpha1.Segment, l *ledger.Ledger) error {
	b, _ := l.MarshalBinary()
	if err := m.recordLimit(l.Len(), len(b)); err != nil || len(b) <= inlineRecordBytes {
		return err
	}
	if err := m.namespaceExists(ctx, l.Len()); err != nil {
		return err
	}
	return m.charge(ctx, seg, len(b))
}

// recordLimit says why a record of members digests, size bytes encoded, cannot be kept, or
// returns nil: too large for a ConfigMap, or too large for status with no namespace to keep
// a ConfigMap in.
func (m *Records) recordLimit(members, size int) error {
	switch {
	case size > maxRecordBytes:
		return stall(usersv1alpha1.ReasonMemberRecordTooLarge, "The record of the members added to this segment would hold %d members, "+
			"more than the operator can keep (about 140,000, counting members added and since removed): nothing more is added. "+
			"memberRemovalPolicy Recreate makes the segment anew with only the desired members", members)
	case size > inlineRecordBytes && m.namespace == "":
		return errNoRecordNamespace(members, "the manager was given none: run it with --member-record-namespace "+
			"(the install sets $POD_NAMESPACE; out of a cluster, the kubeconfig context's namespace is the default)")
	}
	return nil
}

// Error is a record that cannot be kept until someone acts: too large, over the
// namespace's bound, or with no namespace to keep it in. The Segment stalls with its
// reason.
type Error struct{ reason, msg string }

func (e *Error) Error() string { return e.msg }

// StallReason is the Segment's Ready reason while the record cannot be kept.
func (e *Error) StallReason() string { return e.reason }

func stall(reason, format string, args ...any) error {
	return &Error{reason: reason, msg: fmt.Sprintf(format, args...)}
}

func errNoRecordNamespace(members int, why string) error {
	return stall(usersv1alpha1.ReasonMemberRecordNamespaceMissing, "The record of the %d members added is too large for status "+
		"(more than about 400), and the manager has no namespace to keep it in: %s. Nothing more is added", members, why)
}

// namespaceExists returns nil if the manager's namespace for records exists (in the
// cache); else an error for a record of members.
func (m *Records) namespaceExists(ctx context.Context, members int) error {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	err := m.writer.Get(ctx, types.NamespacedName{Name: m.namespace}, ns)
	if apierrors.IsNotFound(err) {
		return m.errNamespaceGone(members)
	}
	return err
}

func (m *Records) errNamespaceGone(members int) error {
	return errNoRecordNamespace(members, fmt.Sprintf("namespace %q (--member-record-namespace) does not exist: create it", m.namespace))
}

// charge charges the Segment's namespace size bytes for its record ConfigMap.
func (m *Records) charge(ctx context.Context, seg *usersv1alpha1.Segment, size int) error {
	err := m.quota.Charge(ctx, seg.Namespace, seg.UID, int64(size))
	if exceeded := (*quota.ExceededError)(nil); errors.As(err, &exceeded) {
		return stall(usersv1alpha1.ReasonMemberRecordQuotaExceeded, "The record of the members added to this segment is too large "+
			"for status and is kept in the manager's namespace, where the records of a namespace's Segments may take at most %d "+
			"bytes (--max-member-record-bytes-per-namespace): this one would take %d, and the namespace's other Segments' %d. "+
			"Nothing more is added until records go (a Segment of the namespace deleted) or an administrator raises the bound",
			exceeded.Limit, exceeded.Charge, exceeded.Others)
	}
	return err
}

// charges lists the record ConfigMaps, metadata only, and returns what each namespace is
// charged for them. A record an earlier version wrote has no size annotation: it is read
// (it is in the manager's namespace, where no tenant writes, and at most maxRecordBytes),
// and given one, so that it is read once.
func (m *Records) charges(ctx context.Context) (quota.Charges, error) {
	out := quota.Charges{}
	charge := func(cm *metav1.PartialObjectMetadata, n int64) {
		ns, _, _ := strings.Cut(cm.Annotations[recordOwnerAnnotation], "/")
		if out[ns] == nil {
			out[ns] = map[types.UID]int64{}
		}
		out[ns][types.UID(strings.TrimPrefix(cm.Name, recordName("")))] = n
	}
	var unsized []metav1.PartialObjectMetadata
	err := metadata.Each(ctx, m.reader, "ConfigMapList", 500, func(cm *metav1.PartialObjectMetadata) bool {
		_, isRecord := strings.CutPrefix(cm.Name, recordName(""))
		if _, _, owned := strings.Cut(cm.Annotations[recordOwnerAnnotation], "/"); !isRecord || !owned {
			return true
		}
		if n, err := strconv.ParseInt(cm.Annotations[recordBytesAnnotation], 10, 64); err == nil {
			charge(cm, n)
		} else {
			unsized = append(unsized, *cm)
		}
		return true
	}, client.InNamespace(m.namespace), client.MatchingLabels{usersv1alpha1.MemberRecordLabel: "true"})
	if err != nil {
		return nil, err
	}
	for i := range unsized {
		cm := &corev1.ConfigMap{}
		if err := m.reader.Get(ctx, client.ObjectKeyFromObject(&unsized[i]), cm); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return nil, err
		}
		n := len(cm.BinaryData[recordKey])
		charge(&unsized[i], int64(n))
		cm.Annotations[recordBytesAnnotation] = strconv.Itoa(n)
		if err := m.writer.Update(ctx, cm); err != nil { // conditional on the version read; RBAC grants update, not patch
			logf.FromContext(ctx).Info("could not mark a member record ConfigMap with its size; it is read again at the next listing",
				"configMap", m.namespace+"/"+cm.Name, "error", err.Error())
		}
	}
	return out, nil
}

// Reset empties the Segment's record, for a remote segment made anew; a ConfigMap that held
// it is named still, for deletion with the Segment (it records the old segment, so it is
// not read for the new one).
func Reset(seg *usersv1alpha1.Segment) {
	if rec := seg.Status.MemberRecord; rec != nil && rec.ConfigMap != "" {
		seg.Status.MemberRecord = &usersv1alpha1.MemberRecord{ConfigMap: rec.ConfigMap}
	} else {
		seg.Status.MemberRecord = nil
	}
}

// recordName is the name of the ConfigMap that holds a Segment's large record.
func recordName(uid types.UID) string { return "segment-members-" + string(uid) }
