// Package metrics defines the operator's Prometheus metrics, served on the manager's
// metrics endpoint beside controller-runtime's own.
//
// API calls are counted and timed by account ID (never the token), operation and status as
// they are made (ObserveAPICall, a remote.AccountOptions Observer); a forgotten account's
// series go with it (ForgetAccount), so that each token a cluster ever used does not stay a
// series. Segments are counted by Ready status and reason as the Segment informer sees them
// change, so that a scrape reads no Segment; the age of each account's shared listing is
// computed when scraped. Label values are a small, fixed set; the rules and
// dashboard in config/prometheus may use only the Names and Reasons given here.
package metrics
