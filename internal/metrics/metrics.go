// Package metrics defines the operator's Prometheus metrics, served on the manager's
// metrics endpoint beside controller-runtime's own.
package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/remote"
)

var (
	apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "segment_operator_chatbot_api_requests_total",
		Help: "ChatBot API calls by account, operation and HTTP status code (0: no response).",
	}, []string{"account", "operation", "code"})

	apiLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "segment_operator_chatbot_api_request_duration_seconds",
		Help:    "ChatBot API call latency by account and operation.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"account", "operation"})

	segmentsDesc = prometheus.NewDesc("segment_operator_segments",
		"Segments by the status of their Ready condition for their current generation (True, False; Unknown if none yet).", []string{"ready"}, nil)
	observationAgeDesc = prometheus.NewDesc("segment_operator_observation_age_seconds",
		"Age of the shared listing of each ChatBot account.", []string{"account"}, nil)
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
	apiRequests.DeletePartialMatch(prometheus.Labels{"account": account})
	apiLatency.DeletePartialMatch(prometheus.Labels{"account": account})
}

// stateCollector computes Segment counts and listing ages when scraped, from the manager's
// cache and the accounts in use: nothing to keep up to date between scrapes.
type stateCollector struct {
	reader   client.Reader
	accounts *remote.Accounts
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- segmentsDesc
	ch <- observationAgeDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list usersv1alpha1.SegmentList
	if err := c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err == nil {
		counts := map[string]float64{"True": 0, "False": 0, "Unknown": 0}
		for i := range list.Items {
			// A Ready condition about an older generation says nothing about the current
			// spec: Unknown, as kstatus would have it.
			status := "Unknown"
			seg := &list.Items[i]
			if ready := meta.FindStatusCondition(seg.Status.Conditions, usersv1alpha1.ConditionReady); ready != nil && ready.ObservedGeneration == seg.Generation {
				status = string(ready.Status)
			}
			counts[status]++
		}
		for status, n := range counts {
			ch <- prometheus.MustNewConstMetric(segmentsDesc, prometheus.GaugeValue, n, status)
		}
	}
	for _, acct := range c.accounts.All() {
		if fetched := acct.Observations.FetchedAt(); !fetched.IsZero() {
			ch <- prometheus.MustNewConstMetric(observationAgeDesc, prometheus.GaugeValue, time.Since(fetched).Seconds(), acct.ID)
		}
	}
}

// Register adds the operator's metrics to controller-runtime's registry, which the
// manager's metrics endpoint serves.
func Register(reader client.Reader, accounts *remote.Accounts) error {
	for _, c := range []prometheus.Collector{apiRequests, apiLatency, &stateCollector{reader: reader, accounts: accounts}} {
		if err := crmetrics.Registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}
