// Package metricsauth lets only authenticated and authorized callers read the manager's
// metrics (--metrics-secure, the default). A request's bearer token is checked with a
// TokenReview, and the caller's right to get the path with a SubjectAccessReview on a
// non-resource URL, which the install's metrics-reader ClusterRole grants. Both answers are
// kept for a while (a token's review a minute, a permission 5 minutes), in caches of a fixed
// number of entries, so a scraper costs the API server a review a minute, and a caller who
// sends a new token with each request cannot grow the manager's memory.
//
// controller-runtime's filters.WithAuthenticationAndAuthorization does the same through
// k8s.io/apiserver's delegating authenticator and authorizer. Those link the API server's
// authentication and authorization code, CEL included: 30 MB of the manager's 78 MB
// binary, and 15 MiB of its resident memory whether metrics are scraped or not. This
// package asks the API server the same two questions through client-go, retried as that
// filter retried them, and answers as it does: 401 without a token the API server
// authenticates, 403 when the caller may not get the path, 500 when the API server cannot
// answer.
package metricsauth
