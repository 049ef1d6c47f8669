// Package apiretry retries a Kubernetes API call that got no answer, or an answer that says
// to try again (429, 500, 503, 504), with a backoff that ends with its context; an answer
// that would come again (403, 404, 409, 422) is returned at once. The manager's own
// reviews of metrics callers (internal/metricsauth) and its Event writes
// (internal/recorder) retry through it, as the API server's webhook clients retry theirs
// (k8s.io/apiserver's DefaultShouldRetry).
package apiretry
