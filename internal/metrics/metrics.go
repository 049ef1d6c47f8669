package metrics

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// stateCollector computes Segment counts and listing ages when scraped, from the manager's
// cache and the accounts in use: nothing to keep up to date between scrapes but the
// (ready, reason) pairs seen so far.
type stateCollector struct {
	reader   client.Reader
	accounts *remote.Accounts
	// owns says which Segments of the cache this manager reconciles (its shard's); nil: all.
	owns func(metav1.Object) bool

	mu   sync.Mutex
	seen map[segmentState]bool
}

// segmentState is the labels of a segments series.
type segmentState struct{ ready, reason string }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- segmentsDesc
	ch <- observationAgeDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list usersv1alpha1.SegmentList
	if err := c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err == nil {
		counts := map[segmentState]float64{}
		for i := range list.Items {
			if c.owns != nil && !c.owns(&list.Items[i]) {
				continue // another shard's, which that shard counts
			}
			ready, reason := segmentLabels(&list.Items[i])
			counts[segmentState{ready, reason}]++
		}
		// The pairs some Segment has, and at 0 those it had since the manager started (so a
		// graph of Stalled Segments falls to 0 rather than stops): not every reason times
		// every status, which would be mostly zeros. The reasons being a fixed set, so are the pairs.
		c.mu.Lock()
		if c.seen == nil {
			c.seen = map[segmentState]bool{}
		}
		for s := range counts {
			c.seen[s] = true
		}
		for s := range c.seen {
			ch <- prometheus.MustNewConstMetric(segmentsDesc, prometheus.GaugeValue, counts[s], s.ready, s.reason)
		}
		c.mu.Unlock()
	}
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
// manager's metrics endpoint serves. Of the Segments in reader, it counts those owns
// passes (a shard's own; nil: all).
func Register(reader client.Reader, accounts *remote.Accounts, owns func(metav1.Object) bool) error {
	for _, c := range []prometheus.Collector{apiRequests, apiLatency, &stateCollector{reader: reader, accounts: accounts, owns: owns}} {
		if err := crmetrics.Registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}
