// Package controller reconciles Segments with their remote ChatBot segments.
//
// # The ownership rule
//
// A Segment manages exactly the remote segment its status.ownership.id names, and nothing
// else. Only the operator writes status; Segment editors cannot. Everything an editor can
// write (spec, labels, annotations, finalizers) is a request, checked against that record
// before any remote write or delete.
//
// # Vocabulary
//
//   - owned: the ID in status.ownership.id. Renames, member adds and deletes go only there.
//   - account: status.ownership.account, the account the owned segment is in. Under
//     credentials that name another account where it is not found, nothing is created or
//     deleted (AccountChanged); found there (a rotated token), the new account is recorded.
//   - observed: status.id, what the Segment shows. It equals the owned ID, or, for a Segment
//     that owns nothing (managementPolicy ObserveOnly), the segment it watches.
//   - pending create: status.ownership.createPending, written before the (non-idempotent)
//     create call with its time, name and account, and replaced by the owned ID after it.
//   - resolve: decide what a pending create made, from a listing that began after the call
//     ended (never one joined in flight): none, one (now owned), or several (CreateUncertain).
//   - claim: take an existing segment as owned: the one spec.id names, the one observed
//     before managing (ObserveOnly, then Manage), or under adoptionPolicy AdoptByName the
//     only unowned one with the name. A claim first checks that no other Segment owns it
//     (the ownership index, and claims this process made that the cache may not show yet)
//     or may have made it (another Segment's pending create of that name, not resolved):
//     see internal/ownership.
//   - legacy hold: the status.id of a Segment an earlier version (no ownership record)
//     left Ready and Synced for its current generation, with the finalizer. It counts as
//     owned until the Segment's first reconcile checks it and records it; the earlier
//     version's create-pending annotation is never trusted, only reported.
//   - finalizer: holds a deleted Segment until its owned segment is deleted. It grants
//     nothing: a hand-added finalizer on a Segment that owns nothing releases at once.
//
// # States and transitions
//
// Each arrow is one status write, conditional on the Segment's resourceVersion, so that
// a reconcile working from a stale copy is refused instead of undoing a newer record:
//
//	          claim (check: no other owner)
//	(none) ─────────────────────────────────────────────▶ owned(id)
//	  │                                                  ▲     │
//	  │ intent: before the create call       created/    │     │ replaced: the segment is gone
//	  ▼                                      resolved    │     │ out of band, or recreated to
//	pending(at, name, account) ─────────────────────────-┘     │ remove members
//	  ▲   │ resolved as "made nothing" / forgotten             │
//	  │   └──────────▶ (none)                                  │
//	  └────────────────────────────────────────────────────────┘
//
// Released is no write: deletion removes the finalizer once the owned segment (or what a
// pending create made) is deleted, or left under deletionPolicy Orphan.
//
// # The flow
//
// Reconcile (reconciler.go) tells one story, and every step returns to it:
//
//	read → upgrade an earlier version's record → deleted? finalize : suspended? record : enter
//	enter: the Segment's account (internal/credentials) and its share of the workers
//	requested (reconcile.fluxcd.io/requestedAt not yet handled)? a listing begun since
//	        (remote.ListOnRequest: at most one forced per account per requestSpacing)
//	observe-only: find the segment, plan.For, show the plan in status.plan
//	manage: desired members (internal/sources) → claim (claim.go) → observe the owned segment
//	        → load the member record → plan.Manage → apply: create | recreate | rename, add members
//	the outcome (or the failure, classify) is written to status once, in a deferred step,
//	        with status.lastHandledReconcileAt, the request it answers, if any
//
// Two writes are made on the way, where durability demands them: the intent before the
// create call (create), and the claim of an existing segment (adopt). The new ID a create
// made is recorded by the final write.
//
// # Decisions
//
// Every decision is a pure function, table-tested: the plan (internal/plan: For, Manage
// with the drift re-add, and OnDelete, what a deleted Segment's finalizer waits for), and in
// decide.go which segment a pending create made (chooseCreated), the upgrade from an
// earlier version (migrate), whether a reconcile was asked for (requested) and how a
// failure is retried (classify). The envtest suite
// proves the wiring.
//
// # Concerns in packages of their own
//
//   - internal/ownership: the claims of this process, the name locks, what it saw of each
//     create, and the indexes the ownership check reads; its lock order is in its doc.
//   - internal/credentials: which account a Segment uses, and the in-use finalizer that
//     keeps its Secret until it is done.
//   - internal/remote: the accounts; remote.External is the only way the flow talks to
//     one (observe, create, rename, delete, add members), and keeps the shared listing
//     current.
//   - internal/sources: the desired members from spec.membersFrom, read within budgets.
//   - internal/memberrecord: the record of the members added, its charge to the
//     namespace (internal/quota), and the sweep of records whose Segment is gone.
//   - internal/plan: what it takes to make the remote segment match.
package controller
