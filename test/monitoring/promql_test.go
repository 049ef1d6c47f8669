package monitoring

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/VictoriaMetrics/metricsql"
)

// promQLFunctions are PromQL's functions, with the position of the argument that must be a
// range vector (-1: none). MetricsQL, whose parser this test uses, has more functions and
// lets a range be left out; PromQL has neither.
var promQLFunctions = map[string]int{
	"abs": -1, "absent": -1, "absent_over_time": 0, "acos": -1, "acosh": -1, "asin": -1,
	"asinh": -1, "atan": -1, "atanh": -1, "avg_over_time": 0, "ceil": -1, "changes": 0,
	"clamp": -1, "clamp_max": -1, "clamp_min": -1, "cos": -1, "cosh": -1,
	"count_over_time": 0, "day_of_month": -1, "day_of_week": -1, "day_of_year": -1,
	"days_in_month": -1, "deg": -1, "delta": 0, "deriv": 0, "exp": -1, "floor": -1,
	"histogram_avg": -1, "histogram_count": -1, "histogram_fraction": -1,
	"histogram_quantile": -1, "histogram_stddev": -1, "histogram_stdvar": -1,
	"histogram_sum": -1, "hour": -1, "idelta": 0, "increase": 0, "irate": 0,
	"label_join": -1, "label_replace": -1, "last_over_time": 0, "ln": -1, "log10": -1,
	"log2": -1, "max_over_time": 0, "min_over_time": 0, "minute": -1, "month": -1, "pi": -1,
	"predict_linear": 0, "present_over_time": 0, "quantile_over_time": 1, "rad": -1,
	"rate": 0, "resets": 0, "round": -1, "scalar": -1, "sgn": -1, "sin": -1, "sinh": -1,
	"sort": -1, "sort_desc": -1, "sqrt": -1, "stddev_over_time": 0, "stdvar_over_time": 0,
	"sum_over_time": 0, "tan": -1, "tanh": -1, "time": -1, "timestamp": -1, "vector": -1,
	"year": -1,
}

// promQLAggregations and promQLOperators are PromQL's.
var (
	promQLAggregations = []string{"avg", "bottomk", "count", "count_values", "group", "max",
		"min", "quantile", "stddev", "stdvar", "sum", "topk"}
	promQLOperators = []string{"+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=",
		"and", "or", "unless", "atan2"}
)

// selector is a metric a query selects, with its label matchers.
type selector struct {
	name     string
	matchers []metricsql.LabelFilter
}

// parsePromQL parses a PromQL expression and returns the metrics it selects. It is
// stricter than metricsql.Parse alone: only PromQL's functions, aggregations and operators,
// a range where PromQL needs one, a metric name on every selector, regexps that compile.
func parsePromQL(q string) ([]selector, error) {
	e, err := metricsql.Parse(q)
	if err != nil {
		return nil, err
	}
	var (
		errs []error
		sels []selector
	)
	metricsql.VisitAll(e, func(e metricsql.Expr) {
		switch e := e.(type) {
		case *metricsql.FuncExpr:
			rangeArg, ok := promQLFunctions[e.Name]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s is not a PromQL function", e.Name))
			case e.KeepMetricNames:
				errs = append(errs, fmt.Errorf("keep_metric_names is not PromQL"))
			case rangeArg >= 0 && (len(e.Args) <= rangeArg || !isRange(e.Args[rangeArg])):
				errs = append(errs, fmt.Errorf("%s takes a range vector as argument %d", e.Name, rangeArg+1))
			}
		case *metricsql.AggrFuncExpr:
			if !slices.Contains(promQLAggregations, e.Name) || e.Limit != 0 {
				errs = append(errs, fmt.Errorf("%s is not a PromQL aggregation", e.AppendString(nil)))
			}
		case *metricsql.BinaryOpExpr:
			if !slices.Contains(promQLOperators, strings.ToLower(e.Op)) || e.KeepMetricNames || e.FillLeft != nil {
				errs = append(errs, fmt.Errorf("%q is not a PromQL operator", e.Op))
			}
		case *metricsql.MetricExpr:
			if len(e.LabelFilterss) != 1 {
				errs = append(errs, fmt.Errorf("%s: or in a selector is not PromQL", e.AppendString(nil)))
				return
			}
			sel := selector{}
			for _, f := range e.LabelFilterss[0] {
				if f.Label == "__name__" && !f.IsRegexp && !f.IsNegative {
					sel.name = f.Value
					continue
				}
				if f.IsRegexp {
					if _, err := regexp.Compile("^(?:" + f.Value + ")$"); err != nil {
						errs = append(errs, fmt.Errorf("%s: %w", e.AppendString(nil), err))
					}
				}
				sel.matchers = append(sel.matchers, f)
			}
			if sel.name == "" {
				errs = append(errs, fmt.Errorf("%s selects no metric by name", e.AppendString(nil)))
			}
			sels = append(sels, sel)
		}
	})
	return sels, errors.Join(errs...)
}

// isRange is whether e is a range vector: a selector with [range], or a subquery.
func isRange(e metricsql.Expr) bool {
	r, ok := e.(*metricsql.RollupExpr)
	return ok && r.Window != nil
}
