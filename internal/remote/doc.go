// Package remote keeps the operator's view of ChatBot accounts: one client, one rate limit
// and one shared observation of the account's segments per set of credentials.
//
// The API has no get-by-id, so observing any segment means listing the whole account. Doing
// that once per Segment per reconcile would make the cost grow with Segments x reconciles;
// instead one listing serves every Segment of the account for a bounded time, and the
// operator's own writes are applied to it as they succeed.
//
// The pieces:
//   - Accounts hands out one Account per base URL and token (its ID a digest of both),
//     forgets those idle for IdleTTL, and bounds how many one namespace may use.
//   - Account implements External, the Segment flow's seam to an account, as
//     crossplane-runtime's ExternalClient is a managed resource's: each write it makes is
//     applied to the account's Observations as it succeeds.
//   - Observations is the one shared listing per account: concurrent callers share one
//     call, Ensure lists at most once per maxAge, and ListedAfter gives a listing begun
//     after a time, the only kind that can show what a call ended by then made.
//     ListedOnRequest does that for reconcile requests, forcing at most one listing per
//     spacing however many Segments ask.
//   - Share is worker admission: it bounds the reconciles of an account's Segments under
//     way at once, shares them fairly among namespaces, and turns them away while the
//     account's rate-limit queue is long.
//   - MemberAdder merges add-members requests with the same users for different segments
//     into shared calls, while they wait for the rate limit anyway.
package remote
