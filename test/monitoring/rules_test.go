package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/segment-operator/segment-operator/internal/metrics"
)

// prometheusRule is the part of a PrometheusRule that Prometheus reads: rulefmt's groups.
type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval"`
			Rules    []rule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

type rule struct {
	Alert         string            `json:"alert"`
	Record        string            `json:"record"`
	Expr          string            `json:"expr"`
	For           string            `json:"for"`
	KeepFiringFor string            `json:"keep_firing_for"`
	Labels        map[string]string `json:"labels"`
	Annotations   map[string]string `json:"annotations"`
}

var (
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	severities = []string{"critical", "warning", "info"}
)

func TestRules(t *testing.T) {
	data, err := os.ReadFile("../../config/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(data, &pr); err != nil {
		t.Fatalf("rules.yaml: %v", err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Fatalf("rules.yaml is a %s %s, want a monitoring.coreos.com/v1 PrometheusRule", pr.APIVersion, pr.Kind)
	}
	if len(pr.Spec.Groups) == 0 {
		t.Fatal("rules.yaml has no rule groups")
	}
	groups := map[string]bool{}
	alerts := 0
	for _, g := range pr.Spec.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q empty or repeated", g.Name)
		}
		groups[g.Name] = true
		checkDuration(t, g.Name+" interval", g.Interval)
		if len(g.Rules) == 0 {
			t.Errorf("group %s has no rules", g.Name)
		}
		for i, r := range g.Rules {
			name := fmt.Sprintf("%s rule %d (%s%s)", g.Name, i, r.Alert, r.Record)
			t.Run(name, func(t *testing.T) { checkRule(t, r) })
			if r.Alert != "" {
				alerts++
			}
		}
	}
	if alerts == 0 {
		t.Error("rules.yaml has no alerts")
	}
}

// checkRule checks a rule as rulefmt and promtool would, and what this project asks of an alert.
func checkRule(t *testing.T, r rule) {
	switch {
	case (r.Alert == "") == (r.Record == ""):
		t.Fatal("a rule is either an alert or a record")
	case r.Record != "" && (r.For != "" || r.KeepFiringFor != "" || len(r.Annotations) > 0):
		t.Error("a recording rule has no for, keep_firing_for or annotations")
	case r.Record != "" && !metricName.MatchString(r.Record):
		t.Errorf("record %q is not a metric name", r.Record)
	case r.Alert != "" && !labelName.MatchString(r.Alert):
		t.Errorf("alert %q is not a valid alert name", r.Alert)
	}
	checkDuration(t, "for", r.For)
	checkDuration(t, "keep_firing_for", r.KeepFiringFor)
	if strings.TrimSpace(r.Expr) == "" {
		t.Fatal("no expr")
	}
	grouping := checkQuery(t, r.Expr)
	for k := range r.Labels {
		if !labelName.MatchString(k) {
			t.Errorf("label %q is not a label name", k)
		}
	}
	if r.Alert == "" {
		return
	}
	if !slices.Contains(severities, r.Labels["severity"]) {
		t.Errorf("label severity is %q, want one of %v", r.Labels["severity"], severities)
	}
	for _, a := range []string{"summary", "description"} {
		if strings.TrimSpace(r.Annotations[a]) == "" {
			t.Errorf("no %s annotation", a)
		}
	}
	for k, v := range r.Annotations {
		if !labelName.MatchString(k) {
			t.Errorf("annotation %q is not a label name", k)
		}
		checkTemplate(t, k, v, grouping)
	}
}

func checkDuration(t *testing.T, what, d string) {
	t.Helper()
	if d == "" {
		return
	}
	if _, err := model.ParseDuration(d); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// checkQuery checks that q is PromQL that selects only metrics the operator exports, with
// reason values the segments gauge has; it returns the labels q aggregates by (none if it
// does not parse or aggregates by none, when it may keep any label).
func checkQuery(t *testing.T, q string) []string {
	t.Helper()
	sels, err := parsePromQL(q)
	if err != nil {
		t.Errorf("%s\n: %v", q, err)
		return nil
	}
	names, reasons := metrics.Names(), metrics.Reasons()
	for _, s := range sels {
		if !slices.Contains(names, s.name) {
			t.Errorf("%s selects %s, which the operator does not export (metrics.Names: %v)", q, s.name, names)
		}
		for _, m := range s.matchers {
			if m.Label != "reason" || m.IsNegative {
				continue
			}
			values := []string{m.Value}
			if m.IsRegexp {
				values = strings.Split(m.Value, "|")
			}
			for _, v := range values {
				if !slices.Contains(reasons, v) {
					t.Errorf("%s matches reason %q, which the segments gauge does not have (metrics.Reasons: %v)", q, v, reasons)
				}
			}
		}
	}
	var by []string
	e, _ := metricsql.Parse(q)
	metricsql.VisitAll(e, func(e metricsql.Expr) {
		if a, ok := e.(*metricsql.AggrFuncExpr); ok && a.Modifier.Op == "by" {
			by = append(by, a.Modifier.Args...)
		}
	})
	slices.Sort(by)
	return slices.Compact(by)
}

// promTemplateFuncs are the functions Prometheus gives alert templates; only their names
// matter for parsing.
var promTemplateFuncs = template.FuncMap{}

func init() {
	for _, f := range []string{"query", "first", "label", "value", "strvalue", "args",
		"reReplaceAll", "safeHtml", "match", "title", "toUpper", "toLower", "graphLink",
		"tableLink", "sortByLabel", "humanize", "humanize1024", "humanizeDuration",
		"humanizePercentage", "humanizeTimestamp", "toTime", "toDuration", "now", "pathPrefix",
		"externalURL", "parseDuration", "stripPort", "stripDomain"} {
		promTemplateFuncs[f] = func(...any) any { return nil }
	}
}

var labelRef = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)

// checkTemplate parses an annotation as Prometheus expands it and, when the alert's
// expression aggregates by some labels, checks that each label it names is one of them.
func checkTemplate(t *testing.T, name, text string, grouping []string) {
	t.Helper()
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	if _, err := template.New(name).Funcs(promTemplateFuncs).Option("missingkey=zero").Parse(defs + text); err != nil {
		t.Errorf("annotation %s: %v", name, err)
	}
	for _, m := range labelRef.FindAllStringSubmatch(text, -1) {
		if len(grouping) > 0 && !slices.Contains(grouping, m[1]) {
			t.Errorf("annotation %s names $labels.%s, which the expression drops (it keeps %v)", name, m[1], grouping)
		}
	}
}

// dashboard is the part of a Grafana dashboard that holds queries.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// grafanaVars are Grafana's variables in a query: an interval, or one of the dashboard's.
var grafanaVars = regexp.MustCompile(`\$\{?(\w+)\}?`)

func TestDashboard(t *testing.T) {
	data, err := os.ReadFile("../../config/prometheus/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("the dashboard has no title or uid")
	}
	queries := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, tg := range p.Targets {
				queries++
				q := grafanaVars.ReplaceAllStringFunc(tg.Expr, func(v string) string {
					if strings.HasPrefix(strings.Trim(v, "${}"), "__") {
						return "5m" // $__rate_interval, $__interval, $__range
					}
					return ".*" // a multi-value variable, used in a =~ matcher
				})
				t.Run(p.Title, func(t *testing.T) { checkQuery(t, q) })
			}
			if len(p.Panels) == 0 && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
		}
	}
	walk(d.Panels)
	if queries == 0 {
		t.Error("the dashboard has no queries")
	}
	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			_ = json.Unmarshal(v.Query, &q.Query) // the older form: a bare string
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
			continue
		}
		if !slices.Contains(metrics.Names(), m[1]) {
			t.Errorf("variable %s: %s is not a metric the operator exports", v.Name, m[1])
		}
	}
}
