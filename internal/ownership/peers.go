package ownership

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// Peers are the other managers of the cluster (shards: see internal/shard), which claim
// remote segments and create them by name while this one does. A claim's check and record
// are one step in this process (the claim lock); Peers make them one step among managers.
type Peers interface {
	// Hold takes seg's hold of remote segment id among managers. When another Segment
	// holds it, ok is false and holder names that one.
	Hold(ctx context.Context, seg *usersv1alpha1.Segment, id string) (holder types.NamespacedName, ok bool, err error)
	// Let lets go of the hold of id by the Segment with uid, if it has it.
	Let(ctx context.Context, uid types.UID, id string)
	// LockName takes seg's lock of a remote name in account among managers, until unlock
	// is called. When another Segment holds it, unlock is nil, holder names that one and
	// until is when its lock ends at the latest.
	LockName(ctx context.Context, seg *usersv1alpha1.Segment, account, name string) (unlock func(), holder types.NamespacedName,
		until time.Time, err error)
}

// BusyError is a step that waits for a lock another manager's Segment holds: the name lock
// of its create.
type BusyError struct {
	// Holder describes the Segment that holds the lock, for the waiting Segment's status.
	Holder string
	// Name is the remote name locked.
	Name string
	// After is when to ask again: when the lock ends, or sooner.
	After time.Duration
}

func (e *BusyError) Error() string {
	// No duration in the message: it is the Segment's status while it waits, written again
	// only when it changes.
	return fmt.Sprintf("%s, reconciled by another manager (shard), is creating or choosing a segment named %q; "+
		"trying again every few seconds until it is done", e.Holder, e.Name)
}

// hold takes seg's hold of id among the managers, if there are others; it describes the
// Segment that holds it instead.
func (r *Registry) hold(ctx context.Context, seg *usersv1alpha1.Segment, id string) (string, error) {
	if r.peers == nil {
		return "", nil
	}
	holder, ok, err := r.peers.Hold(ctx, seg, id)
	if err != nil || ok {
		return "", err
	}
	return describe(seg, holder) + " (on another shard)", nil
}
