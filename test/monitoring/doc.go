// Package monitoring holds the tests of config/prometheus: the PrometheusRule's groups are
// well formed (as promtool check rules would have them), every expression of the rules and
// the Grafana dashboard is PromQL, and selects only metrics the operator exports
// (internal/metrics). There is no code here, only tests.
package monitoring
