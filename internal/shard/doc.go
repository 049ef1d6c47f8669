// Package shard lets several managers share the Segments of one cluster, as Flux's
// controllers do: each manager reconciles the Segments whose labels match its selector
// (--watch-label-selector, usually on sharding.fluxcd.io/key), one Deployment and one
// leader election lease per shard.
//
// Done naively, a shard would see only its own Segments, and two of the operator's
// guarantees would break between shards: that no two Segments own one remote segment (the
// ownership check would miss another shard's owner), and that the sweep of member records
// deletes only the records of Segments that are gone. So every manager keeps every Segment
// of the cluster in its cache, and its own whole; another shard's Segment is cut down, as it
// is read, to what those checks read of it (View): its owned remote ID, its pending create,
// its credentials Secret, its member record's name. The controller reconciles only its own
// (Owns, Predicate), and Reconcile checks it again of the Segment it read.
//
// A claim's check and its record are one step within a process (the ownership Registry's
// claim lock), but not between processes: two shards could both find a segment free, then
// both record it. Leases make that one step across managers: a claim of remote segment ID
// creates the Lease segment-claim-<hash of ID> in the managers' namespace, which the API
// server lets only one manager create; a create holds segment-name-<hash of account and
// name> from before its intent is recorded until its ID is claimed. A Lease left by a
// Segment that no longer holds what it names is taken over.
package shard
