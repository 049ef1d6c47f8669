// Package memberrecord keeps the record of the members the operator added to each remote
// segment: the API cannot list a segment's members, nor remove one, so this record is the
// only way to know what was sent, and what a removal from the spec leaves behind.
//
// # Where a record is
//
// A record is a ledger.Ledger: 8-byte digests, about 7 bytes a member. While it is small
// (inlineRecordBytes, about 400 members) it is in status.memberRecord.digests; beyond, in a
// ConfigMap of the manager's own namespace (which no tenant can write) named after the
// Segment's UID (segment-members-<UID>) and marked with the remote segment it records. So
// the Segment stays small whatever its member count, and a record of another remote
// segment (before a Recreate) is never taken for this one's.
//
//	(none) ──Save, small──▶ inline (status) ──Save, large──▶ ConfigMap (status names it)
//	                                ▲                            │ Reset (Recreate): empty,
//	                                └────────────────────────────┘ the ConfigMap named still
//	Drop (the Segment deleted): the ConfigMap goes; the sweep deletes those of Segments gone
//	without it.
//
// # What it costs, and who pays
//
// A record ConfigMap is charged to its Segment's namespace (internal/quota) before any
// member it records is sent (Reserve): no ResourceQuota of the tenant's counts what it
// makes the manager keep in its own namespace. A record that cannot be kept (too large for
// a ConfigMap, over the namespace's bound, no namespace to keep it in) is an *Error: the
// Segment stalls with its reason, and nothing is sent.
//
// # What is remembered
//
// The records last read or written are kept in memory (memoDigests in all), and the
// Segments found to have no record ConfigMap their status does not name (absentRecords),
// so that steady state reads no ConfigMap.
package memberrecord
