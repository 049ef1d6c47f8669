package monitoring

import "testing"

// parsePromQL refuses what Prometheus would, and what MetricsQL alone lets through.
func TestParsePromQL(t *testing.T) {
	for _, tc := range []struct {
		q  string
		ok bool
	}{
		{`sum by (code) (rate(x_total{code="429"}[5m])) > 0`, true},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))`, true},
		{`a > 600 and on (account) sum by (account) (increase(b[5m])) > 0`, true},
		{`sum(rate(x_total[5m])`, false},           // unbalanced
		{`sum by (code) rate(x_total[5m])`, false}, // no parentheses
		{`rate(x_total)`, false},                   // no range
		{`rate(x_total[5m]) >`, false},             // no right-hand side
		{`range_median(x[5m])`, false},             // MetricsQL only
		{`sum(x) limit 3`, false},                  // MetricsQL only
		{`{code="429"}`, false},                    // no metric name
		{`x{code=~"4(("}`, false},                  // bad regexp
	} {
		if _, err := parsePromQL(tc.q); (err == nil) != tc.ok {
			t.Errorf("parsePromQL(%s): error %v, want ok=%v", tc.q, err, tc.ok)
		}
	}
}
