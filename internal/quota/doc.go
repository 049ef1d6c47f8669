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
// so what was deleted without this process knowing (by an administrator, or the sweep of
// records whose Segment is gone) stops counting. The manager is the only writer of what
// it charges, and only the leader writes, so between listings the charges are exact.
package quota
