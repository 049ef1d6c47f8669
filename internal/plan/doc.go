// Package plan decides what it takes to make a remote ChatBot segment match its Segment:
// a pure function of values, with no client and no manager, so that the controller and a
// command-line tool compute the same plan.
//
// The inputs are the Segment, its desired members (sorted, unique), the record of the
// members the operator added (a ledger: the API cannot list a segment's members, so a
// member counts as present only if the operator added it) and the remote segment as the
// account's listing shows it (nil: there is none). The plan is one of:
//
//	create    no segment: create one with the desired name and every desired member
//	recreate  memberRemovalPolicy Recreate and members to remove: delete, then create
//	rename    the segment's name differs from the desired one
//	add       desired members not added yet (or, after drift, every desired member)
//
// Drift is what the segment's member count, the only signal the API gives of its members,
// says of members removed outside the operator; Manage folds it into the plan (a re-add),
// For leaves it out (ObserveOnly shows what managing would change, and judges no drift).
package plan
