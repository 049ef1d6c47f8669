// Package ownership keeps the one rule of the operator: a Segment manages exactly the
// remote segment its status.ownership.id names, and no two Segments own one segment.
//
// The record itself is in each Segment's status, which only the manager writes. This
// package answers, for a Segment about to take a segment (claim, adopt, create), whether
// another holds it, from two places:
//
//   - the cache, through two indexes of its Segment informer (IndexInformer), across
//     namespaces: Segments by the ID they own (IndexRemoteID; an earlier version's hold
//     counts, see LegacyHold) and by the name of their pending create
//     (IndexPendingCreate: a segment such a create may have made is not free);
//   - the Registry, this process's own claims: the cache can lag behind a status write by
//     a moment, in which another Segment must not take the same ID.
//
// With several managers (shards, see internal/shard), the cache holds every Segment of the
// cluster, and Peers make a claim and a name lock hold among managers too: a claim takes
// the remote ID's hold (ClaimWith and Choose under the claim lock, Claim between its check
// and its record), and a name lock is taken in this process, then among managers, where
// one another manager's Segment holds is a *BusyError.
//
// The Registry also holds the name locks (one per account and remote name, from a create
// call until its ID is claimed, and while a segment is chosen by name) and what this
// process saw of each Segment's last create (when it ended; whether it certainly made
// nothing), which resolving a pending create needs.
//
// # Lock order
//
// A name lock (LockName) is taken first, then the claim lock (held inside Claim,
// ClaimWith, Check and Choose, which check and record as one step; ClaimWith holds it
// across its bind, the Kubernetes writes that make a claim durable), then the lock of the
// claims map (held only inside the Registry's own methods). Only a name lock is held
// across a call to ChatBot: the create call, up to its deadline. With Peers, their
// Kubernetes calls (the Leases) are made under the name lock, and under the claim lock in
// ClaimWith and Choose, which hold it across Kubernetes writes anyway. The name locks are
// hashed into 1024 buckets, so two names rarely, but may, wait for each other.
package ownership
