// Package quota charges to a tenant's namespace what the manager keeps on its behalf
// outside it, against a bound fixed in advance: the member records of a namespace's
// Segments, kept in the manager's own namespace, where no ResourceQuota of the tenant's
// counts them.
//
// Each owner (a Segment, by UID) has one charge in its namespace: the bytes it keeps now.
// A charge is set before what it pays for is written (so nothing is sent that could not
// be recorded), and released when that is deleted. A namespace's charges together may
// not pass the limit; a charge that does not grow is never refused.
//
// The charges are known from a listing of what is kept (Load), made at the first charge
// of the process and again, at most once per reloadInterval, before a charge is refused:
// so what was deleted without this process knowing (by an administrator) stops counting.
// A charge this process set stands until it is released, whatever a listing shows: what
// it pays for may still be being made. The manager is the only writer of what it charges,
// and only the leader writes, so the charges are never less than what is kept; they are
// more by what a charge paid for that was never written (members that could not be sent),
// until it is released.
package quota
