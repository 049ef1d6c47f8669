package metrics

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// The metric names; the rules and dashboard in config/prometheus query them (see Names).
const (
	apiRequestsName    = "segment_operator_chatbot_api_requests_total"
	apiLatencyName     = "segment_operator_chatbot_api_request_duration_seconds"
	segmentsName       = "segment_operator_segments"
	observationAgeName = "segment_operator_observation_age_seconds"
)

// accountLabel is the label of the API call metrics and the observation age that names the
// ChatBot account.
const accountLabel = "account"

var (
	apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: apiRequestsName,
		Help: "ChatBot API calls by account, operation and HTTP status code (0: no response).",
	}, []string{accountLabel, "operation", "code"})

	apiLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    apiLatencyName,
		Help:    "ChatBot API call latency by account and operation.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{accountLabel, "operation"})

	segmentsDesc = prometheus.NewDesc(segmentsName,
		"Segments by the status and reason of their Ready condition for their current generation (Unknown if none yet).", []string{"ready", "reason"}, nil)
	observationAgeDesc = prometheus.NewDesc(observationAgeName,
		"Age of the shared listing of each ChatBot account.", []string{accountLabel}, nil)
)

// operations are the operation label values, short and stable.
var operations = map[string]string{
	chatbot.OpList: "list", chatbot.OpCreate: "create", chatbot.OpAdd: "add_members",
	chatbot.OpRename: "rename", chatbot.OpDelete: "delete",
}

// ObserveAPICall records one ChatBot API call; it is a remote.AccountOptions Observer.
func ObserveAPICall(account, op string, status int, elapsed time.Duration) {
	name := operations[op]
	if name == "" {
		name = op
	}
	apiRequests.WithLabelValues(account, name, strconv.Itoa(status)).Inc()
	apiLatency.WithLabelValues(account, name).Observe(elapsed.Seconds())
}

// ForgetAccount drops the API call series of an account the operator has forgotten (its
// token was rotated, its Secret deleted): otherwise each token a cluster ever used would
// stay a series; it is a remote.AccountOptions Forgotten.
func ForgetAccount(account string) {
	apiRequests.DeletePartialMatch(prometheus.Labels{accountLabel: account})
	apiLatency.DeletePartialMatch(prometheus.Labels{accountLabel: account})
}

// stateCollector reports Segment counts, kept up to date by the Segment informer's events
// (segmentCounts), and the listing ages of the accounts in use, when scraped: a scrape
// costs a line per series, not a read of every Segment.
type stateCollector struct {
	segments *segmentCounts
	accounts *remote.Accounts
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- segmentsDesc
	ch <- observationAgeDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.segments.each(func(s segmentState, n int) {
		ch <- prometheus.MustNewConstMetric(segmentsDesc, prometheus.GaugeValue, float64(n), s.ready, s.reason)
	})
	for _, acct := range c.accounts.All() {
		if fetched := acct.Observations.FetchedAt(); !fetched.IsZero() {
			ch <- prometheus.MustNewConstMetric(observationAgeDesc, prometheus.GaugeValue, time.Since(fetched).Seconds(), acct.ID)
		}
	}
}

// Names are the metric names the operator exports as PromQL queries them (a histogram's
// _bucket, _sum and _count series, not its own name); the rules and the dashboard in
// config/prometheus may use only these, which a test checks.
func Names() []string {
	return []string{
		apiRequestsName,
		apiLatencyName + "_bucket", apiLatencyName + "_sum", apiLatencyName + "_count",
		segmentsName,
		observationAgeName,
	}
}

// Register adds the operator's metrics to controller-runtime's registry, which the
// manager's metrics endpoint serves, and counts the Segments of the informers' Segment
// informer that owns passes (a shard's own; nil: all).
func Register(ctx context.Context, informers cache.Informers, accounts *remote.Accounts, owns func(metav1.Object) bool) error {
	segments := newSegmentCounts(owns)
	informer, err := informers.GetInformer(ctx, &usersv1alpha1.Segment{})
	if err != nil {
		return fmt.Errorf("segments gauge: %w", err)
	}
	if _, err := informer.AddEventHandler(segments.handler()); err != nil {
		return fmt.Errorf("segments gauge: %w", err)
	}
	for _, c := range []prometheus.Collector{apiRequests, apiLatency, &stateCollector{segments: segments, accounts: accounts}} {
		if err := crmetrics.Registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}
