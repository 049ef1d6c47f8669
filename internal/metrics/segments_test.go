package metrics

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// segment is a Segment at generation 2 with the conditions, each given as type, status,
// reason and the generation it is about.
func segment(name string, conds ...[4]string) *usersv1alpha1.Segment {
	seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Generation: 2}}
	for _, c := range conds {
		gen, _ := strconv.ParseInt(c[3], 10, 64)
		seg.Status.Conditions = append(seg.Status.Conditions, metav1.Condition{
			Type: c[0], Status: metav1.ConditionStatus(c[1]), Reason: c[2], ObservedGeneration: gen,
		})
	}
	return seg
}

func TestSegmentLabels(t *testing.T) {
	for _, tc := range []struct {
		name          string
		seg           *usersv1alpha1.Segment
		ready, reason string
	}{
		{"synced", segment("s", [4]string{"Ready", "True", "Synced", "2"}), "True", "Synced"},
		{"observed, drift", segment("s", [4]string{"Ready", "True", "DriftDetected", "2"}), "True", "DriftDetected"},
		{"stalled", segment("s", [4]string{"Ready", "False", "Unauthorized", "2"}, [4]string{"Stalled", "True", "Unauthorized", "2"}), "False", "Unauthorized"},
		{"retrying", segment("s", [4]string{"Ready", "False", "RateLimited", "2"}, [4]string{"Reconciling", "True", "RateLimited", "2"}), "False", "RateLimited"},
		{"a reason not in the API", segment("s", [4]string{"Ready", "False", "SomethingNew", "2"}), "False", "Other"},
		{"an empty reason", segment("s", [4]string{"Ready", "False", "", "2"}), "False", "Other"},
		{"Ready about an older generation", segment("s", [4]string{"Ready", "True", "Synced", "1"}), "Unknown", "Pending"},
		{"no condition yet", segment("s"), "Unknown", "Pending"},
		{"suspended", segment("s", [4]string{"Suspended", "True", "Suspended", "2"}), "Unknown", "Suspended"},
		{"suspended, for an older generation", segment("s", [4]string{"Suspended", "True", "Suspended", "1"}), "Unknown", "Pending"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready, reason := segmentLabels(tc.seg)
			if ready != tc.ready || reason != tc.reason {
				t.Errorf("labels ready=%q reason=%q, want ready=%q reason=%q", ready, reason, tc.ready, tc.reason)
			}
		})
	}
}

// Every Reason constant of the API is a reason label value of its own, so that a reason
// added there does not hide under Other.
func TestReadyReasonsAreTheAPIReasons(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../api/v1alpha1/conditions.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var api []string
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok || len(spec.Values) != 1 || !strings.HasPrefix(spec.Names[0].Name, "Reason") {
			return true
		}
		if lit, ok := spec.Values[0].(*ast.BasicLit); ok {
			v, _ := strconv.Unquote(lit.Value)
			api = append(api, v)
		}
		return true
	})
	if len(api) == 0 {
		t.Fatal("no Reason constants found in api/v1alpha1/conditions.go")
	}
	for _, r := range api {
		if !readyReasons[r] {
			t.Errorf("reason %s of api/v1alpha1 is missing from readyReasons", r)
		}
	}
	for r := range readyReasons {
		if !slices.Contains(api, r) {
			t.Errorf("readyReasons has %s, which api/v1alpha1 does not define", r)
		}
	}
}

// gaugeHeader is what the segments gauge's exposition starts with.
const gaugeHeader = `# HELP segment_operator_segments Segments by the status and reason of their Ready condition for their current generation (Unknown if none yet).
# TYPE segment_operator_segments gauge
`

// The gauge counts Segments by ready and reason as the informer's events change them, and
// keeps at 0 a pair it has seen; a Segment deleted (or known gone only by its tombstone) or
// moved to another shard is counted no more.
func TestSegmentsGauge(t *testing.T) {
	a, b := segment("a", [4]string{"Ready", "True", "Synced", "2"}), segment("b", [4]string{"Ready", "True", "Synced", "2"})
	stalled, pending := segment("c", [4]string{"Ready", "False", "Unauthorized", "2"}), segment("d")
	counts := newSegmentCounts(nil)
	h := counts.handler()
	for _, seg := range []*usersv1alpha1.Segment{a, b, stalled, pending} {
		h.OnAdd(seg, true)
	}
	coll := &stateCollector{segments: counts, accounts: remote.NewAccounts(remote.AccountOptions{})}
	want := gaugeHeader + `segment_operator_segments{ready="False",reason="Unauthorized"} 1
segment_operator_segments{ready="True",reason="Synced"} 2
segment_operator_segments{ready="Unknown",reason="Pending"} 1
`
	if err := testutil.CollectAndCompare(coll, strings.NewReader(want), segmentsName); err != nil {
		t.Error(err)
	}
	h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "ns/c", Obj: stalled})
	synced := pending.DeepCopy()
	synced.Status.Conditions = a.Status.Conditions
	h.OnUpdate(pending, synced)
	want = gaugeHeader + `segment_operator_segments{ready="False",reason="Unauthorized"} 0
segment_operator_segments{ready="True",reason="Synced"} 3
segment_operator_segments{ready="Unknown",reason="Pending"} 0
`
	if err := testutil.CollectAndCompare(coll, strings.NewReader(want), segmentsName); err != nil {
		t.Errorf("after the stalled Segment went and the pending one synced: %v", err)
	}

	// A shard counts its own Segments only: another shard counts the others, and one
	// relabelled away goes from this shard's count.
	counts = newSegmentCounts(func(o metav1.Object) bool { return o.GetLabels()["shard"] != "b" })
	h = counts.handler()
	for _, seg := range []*usersv1alpha1.Segment{a, b, pending} {
		h.OnAdd(seg, true)
	}
	moved := b.DeepCopy()
	moved.Labels = map[string]string{"shard": "b"}
	h.OnUpdate(b, moved)
	h.OnAdd(segment("e"), false)
	other := segment("f")
	other.Labels = map[string]string{"shard": "b"}
	h.OnAdd(other, false)
	coll = &stateCollector{segments: counts, accounts: remote.NewAccounts(remote.AccountOptions{})}
	want = gaugeHeader + `segment_operator_segments{ready="True",reason="Synced"} 1
segment_operator_segments{ready="Unknown",reason="Pending"} 2
`
	if err := testutil.CollectAndCompare(coll, strings.NewReader(want), segmentsName); err != nil {
		t.Errorf("a shard's count: %v", err)
	}
}

// Names lists what the collectors export, as PromQL sees it.
func TestNamesAreWhatIsExported(t *testing.T) {
	var listed []string
	ObserveAPICall("names", "list", 200, 0)
	defer ForgetAccount("names")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(apiRequests, apiLatency)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetType().String() == "HISTOGRAM" {
			listed = append(listed, f.GetName()+"_bucket", f.GetName()+"_sum", f.GetName()+"_count")
		} else {
			listed = append(listed, f.GetName())
		}
	}
	// The state collector's series need Segments and listed accounts: its descriptions.
	descs := make(chan *prometheus.Desc, 10)
	(&stateCollector{}).Describe(descs)
	close(descs)
	for d := range descs {
		name, _, _ := strings.Cut(strings.TrimPrefix(d.String(), `Desc{fqName: "`), `"`)
		listed = append(listed, name)
	}
	slices.Sort(listed)
	names := slices.Sorted(slices.Values(Names()))
	if !slices.Equal(listed, names) {
		t.Errorf("Names() = %v, but the collectors export %v", names, listed)
	}
}
