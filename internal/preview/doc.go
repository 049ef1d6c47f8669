// Package preview says what the operator will do about each Segment of a set of manifests
// once they are applied, before they are: kubectl segments plan. It is pure: the caller
// reads the cluster (and, with --live, the ChatBot account) and hands over values.
//
// The remote part of a Change is computed by internal/plan, with the very calls the
// controller makes (plan.Manage for a managed Segment, plan.For for an observe-only one,
// plan.OnDelete for a pruned one), from the remote segment as the Segment's status last
// recorded it (plan.Recorded) or, with --live, as the account's listing shows it. So a
// preview and the controller cannot disagree on a rule; they can only see different inputs,
// and a Change says which of its inputs it could not see (a bound, a note, unknown).
//
// # Inputs
//
//   - the manifest's Segment (the desired spec), and the cluster's Segment of that name
//     (nil: a new one), whose status is the operator's last observation: the owned remote
//     ID, its name and member count, the record of the members added;
//   - the desired members, resolved by the caller (spec.members and spec.membersFrom);
//   - the record of added members: readable when status holds it, or when the user may read
//     the ConfigMap in the manager's namespace; otherwise only its count
//     (status.memberRecord.added) is known, and members to add is a bound;
//   - the account's listing (--live), for what status cannot answer: adoption by name, a
//     segment spec.id names that no Segment observed yet;
//   - who owns a remote ID (another Segment's status.ownership.id);
//   - the API server's refusal of a server-side dry run, if any.
//
// # Kinds of change
//
//	create        no remote segment: one is created, with every desired member
//	adopt         an existing segment is taken over (by spec.id, status.id or name)
//	rename        the owned segment is renamed
//	add           members are added to the owned segment
//	recreate      memberRemovalPolicy Recreate: deleted and created anew
//	notRemovable  nothing to do, but members the API cannot remove stay (Warn)
//	none          nothing to do (also: suspended, observe-only)
//	delete        pruned (--prune): the Segment goes, and its remote segment with it
//	orphan        pruned: the Segment goes, its remote segment stays in ChatBot
//	refused       the API server refuses the manifest (admission)
//	conflict      the remote segment is another Segment's, or spec.id names another than
//	              the one this Segment manages
//	stalled       the controller would stop with a reason (RemoteNotFound,
//	              AdoptionAmbiguous, MembersSourceError) until someone acts
//	unknown       status cannot answer and there is no listing (use --live)
//
// create, adopt, rename, add, recreate, delete and orphan are changes: they make plan
// --detailed-exitcode exit 2. The others are not: they are what applying leaves as it is
// (or cannot do), and a second plan after applying says the same.
package preview
