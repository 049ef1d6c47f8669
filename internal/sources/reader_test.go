package sources

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

var labelled = map[string]string{usersv1alpha1.MembersLabel: "true"}

func configMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team", Labels: labelled, UID: types.UID("uid-" + name)},
		Data: data}
}

func segment(uid string, members []string, from ...string) *usersv1alpha1.Segment {
	seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "team", UID: types.UID(uid), Generation: 1},
		Spec: usersv1alpha1.SegmentSpec{Members: members}}
	for _, f := range from {
		cm, key, _ := strings.Cut(f, "/")
		seg.Spec.MembersFrom = append(seg.Spec.MembersFrom, usersv1alpha1.MembersSource{ConfigMap: cm, Key: key})
	}
	return seg
}

// counted returns a reader of objs that counts the ConfigMaps read whole (Get), and the
// client behind it, to change them.
func counted(objs ...client.Object) (client.Reader, client.Client, *atomic.Int64) {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	reads := &atomic.Int64{}
	return interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			reads.Add(1)
			return c.Get(ctx, key, obj, opts...)
		}}), c, reads
}

// A source the Segment cannot use is an *Error; an API server that does not answer (a
// timeout) is an error to retry, and refuses nothing.
func TestMembersRefusesOnlyForTheSource(t *testing.T) {
	objs := []client.Object{
		configMap("good", map[string]string{"ids": "u2\nu1\n"}),
		configMap("bad", map[string]string{"ids": "u1\n-\n"}),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "team"}, Data: map[string]string{"ids": "u1\n"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "foreign", Namespace: "other", Labels: labelled}, Data: map[string]string{"ids": "x1\n"}},
	}
	c, _, _ := counted(objs...)
	down := interceptor.NewClient(fake.NewClientBuilder().WithObjects(objs...).Build(), interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return apierrors.NewTimeoutError("the API server is slow", 1)
		}})
	for _, tc := range []struct {
		name   string
		api    client.Reader
		source string
		want   []string
		refuse string // the *Error's message, or "" for none
		retry  bool   // an error, not a refusal
	}{
		{"read and unioned", c, "good/ids", []string{"m1", "u1", "u2"}, "", false},
		{"a bad line", c, "bad/ids", nil, `line 2: "-"`, false},
		{"no such key", c, "good/other", nil, `key "other": no such key`, false},
		{"missing", c, "gone/ids", nil, `ConfigMap "gone" named by spec.membersFrom not found`, false},
		{"unlabelled", c, "plain/ids", nil, `ConfigMap "plain" named by spec.membersFrom not found`, false},
		{"another namespace's is never read", c, "foreign/ids", nil, `ConfigMap "foreign" named by spec.membersFrom not found in namespace "team"`, false},
		{"the API server times out", down, "good/ids", nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(c, tc.api, Limits{})
			got, err := r.Members(context.Background(), segment("s", []string{"m1"}, tc.source))
			var bad *Error
			switch {
			case tc.refuse != "" && (!errors.As(err, &bad) || !strings.Contains(bad.Error(), tc.refuse)):
				t.Fatalf("err = %v, want an *Error saying %q", err, tc.refuse)
			case tc.retry && (err == nil || errors.As(err, &bad)):
				t.Fatalf("err = %v, want an error to retry, not a refusal", err)
			case tc.refuse == "" && !tc.retry && (err != nil || !slices.Equal(got, tc.want)):
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// ids returns n distinct IDs, one per line.
func ids(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s%d\n", prefix, i)
	}
	return b.String()
}

// Reading stops at the first key that takes the Segment past a budget: the keys after it
// are not read. A refused Segment is not read again until a source or its spec changes,
// and what it read is not kept for others.
func TestMembersStopsAtTheFirstKeyPastABudget(t *testing.T) {
	half := usersv1alpha1.MaxMembers/2 + 1
	for _, tc := range []struct {
		name   string
		limits Limits
		data   map[string]string // key: its IDs, in ConfigMap "list"
		from   []string
		reads  int64 // ConfigMaps read whole
		refuse string
	}{
		{name: "members: the third key is not read", data: map[string]string{"a": ids("a", half), "b": ids("b", half), "c": "c1\n"},
			from: []string{"list/a", "list/b", "list/c"}, reads: 2,
			refuse: fmt.Sprintf("name more than %d members together (reading stopped at ConfigMap \"list\", key \"b\", source 2 of 3)", usersv1alpha1.MaxMembers)},
		{name: "members counted once: overlapping keys pass", data: map[string]string{"a": ids("a", half), "b": ids("a", half)},
			from: []string{"list/a", "list/b"}, reads: 2},
		{name: "weight: a key past the Segment's budget is read no further", limits: Limits{SegmentBytes: 300},
			data: map[string]string{"a": "a1\na2\na3\n", "b": "b1\nb2\nb3\nb4\nb5\n", "c": "c1\n"}, from: []string{"list/a", "list/b", "list/c"}, reads: 2,
			refuse: "weighs more than 300 bytes in all, counting 48 bytes for each ID besides its text (reading stopped at ConfigMap \"list\", key \"b\", source 2 of 3)"},
		{name: "weight: exactly the budget", limits: Limits{SegmentBytes: 9 + 3*idCost + 15 + 5*idCost},
			data: map[string]string{"a": "a1\na2\na3\n", "b": "b1\nb2\nb3\nb4\nb5\n"}, from: []string{"list/a", "list/b"}, reads: 2},
		{name: "a key named twice is read once and weighs once", limits: Limits{SegmentBytes: 9 + 3*idCost},
			data: map[string]string{"a": "a1\na2\na3\n"}, from: []string{"list/a", "list/a"}, reads: 1},
		{name: "the same IDs in many keys weigh each time", limits: Limits{SegmentBytes: 2 * (9 + 3*idCost)},
			data: map[string]string{"a": "a1\na2\na3\n", "b": "a1\na2\na3\n", "c": "a1\na2\na3\n"}, from: []string{"list/a", "list/b", "list/c"}, reads: 3,
			refuse: "source 3 of 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api, _, reads := counted(configMap("list", tc.data))
			r := NewReader(api, api, tc.limits)
			seg := segment("s", nil, tc.from...)
			_, err := r.Members(context.Background(), seg)
			var bad *Error
			switch {
			case tc.refuse != "" && (!errors.As(err, &bad) || !strings.Contains(err.Error(), tc.refuse)):
				t.Fatalf("err = %v, want an *Error saying %q", err, tc.refuse)
			case tc.refuse == "" && err != nil:
				t.Fatal(err)
			case reads.Load()-distinct(tc.from) != tc.reads: // less the metadata reads, one a source named
				t.Fatalf("%d keys read, want %d", reads.Load()-distinct(tc.from), tc.reads)
			}
		})
	}
}

func distinct(from []string) int64 {
	s := slices.Clone(from)
	slices.Sort(s)
	return int64(len(slices.Compact(s)))
}

// A refused Segment is not read again until its spec or a ConfigMap it names changes;
// what it read is not kept for others, and what an accepted Segment read is.
func TestARefusedSegmentIsNotReadAgain(t *testing.T) {
	api, c, reads := counted(configMap("list", map[string]string{"a": "a1\na2\n", "b": "b1\nb2\nb3\n"}))
	r := NewReader(api, api, Limits{SegmentBytes: 160}) // a weighs 6+96, b 9+144; b1 alone 3+48
	get := func(seg *usersv1alpha1.Segment) ([]string, int64, error) {
		before := reads.Load()
		got, err := r.Members(context.Background(), seg)
		return got, reads.Load() - before - int64(len(seg.Spec.MembersFrom)), err // less the metadata reads
	}
	greedy := segment("greedy", nil, "list/a", "list/b")
	if _, n, err := get(greedy); err == nil || n != 2 {
		t.Fatalf("first: %d read, %v", n, err)
	}
	if _, n, err := get(greedy); err == nil || n != 0 {
		t.Fatalf("again, unchanged: %d read, %v; want the refusal, nothing read", n, err)
	}
	if _, n, err := get(segment("modest", nil, "list/a")); err != nil || n != 1 {
		t.Fatalf("another Segment naming a key the refused one read: %d read, %v; want it read (the refused read is not kept)", n, err)
	}
	if got, n, err := get(segment("modest-too", nil, "list/a")); err != nil || n != 0 || !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("a third naming the same key: %q, %d read, %v; want it from the memo", got, n, err)
	}
	greedy.Generation++
	if _, n, err := get(greedy); err == nil || n != 0 {
		t.Fatalf("after a spec change: %d read, %v; want a from the memo, and b known too heavy, not read", n, err)
	}
	if _, n, err := get(segment("greedy-too", nil, "list/a", "list/b")); err == nil || n != 0 {
		t.Fatalf("another Segment naming the heavy key: %d read, %v; want it refused unread", n, err)
	}

	cm := &corev1.ConfigMap{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "team", Name: "list"}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["b"] = "b1\n"
	if err := c.Update(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	if got, n, err := get(greedy); err != nil || n != 2 || !slices.Equal(got, []string{"a1", "a2", "b1"}) {
		t.Fatalf("after the ConfigMap shrank: %q, %d read, %v", got, n, err)
	}
}

// A Segment that read more than half the memo's IDs keeps none of them there: the others'
// keys stay.
func TestTheHeaviestSegmentsDoNotFlushTheMemo(t *testing.T) {
	big := ids("b", maxMemoIDs/4+1)
	api, _, reads := counted(configMap("list", map[string]string{"small": "s1\n", "a": big, "b": big}))
	r := NewReader(api, api, Limits{SegmentBytes: 64 << 20})
	for _, seg := range []*usersv1alpha1.Segment{segment("small", nil, "list/small"), segment("heavy", nil, "list/a", "list/b")} {
		if _, err := r.Members(context.Background(), seg); err != nil {
			t.Fatal(err)
		}
	}
	before := reads.Load()
	if _, err := r.Members(context.Background(), segment("small-again", nil, "list/small")); err != nil || reads.Load()-before != 1 {
		t.Fatalf("%d reads, %v: want the small key from the memo (1 metadata read)", reads.Load()-before, err)
	}
	if r.memo.ids != 2 { // the small key's ID, and the key itself
		t.Fatalf("the heavy Segment's keys kept: %d IDs", r.memo.ids)
	}
}

// A key refused on its own is read once, whatever the number of Segments naming it.
func TestABadKeyIsReadOnce(t *testing.T) {
	api, _, reads := counted(configMap("list", map[string]string{"bad": "u1\n-\n"}))
	r := NewReader(api, api, Limits{})
	for i := range 5 {
		if _, err := r.Members(context.Background(), segment(fmt.Sprint("s", i), nil, "list/bad")); err == nil {
			t.Fatal("a bad line accepted")
		}
	}
	if n := reads.Load() - 5; n != 1 {
		t.Fatalf("the key read %d times by 5 Segments, want once", n)
	}
}

// A Segment waits for its share of the bytes the manager reads at once, and reads nothing
// while it waits.
func TestMembersWaitForTheirShare(t *testing.T) {
	api, _, reads := counted(configMap("list", map[string]string{"a": "a1\n"}))
	r := NewReader(api, api, Limits{})
	if err := r.parsing.Acquire(context.Background(), DefaultParseBytes); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Members(ctx, segment("s", nil, "list/a")); !errors.Is(err, context.DeadlineExceeded) || reads.Load() != 1 {
		t.Fatalf("with the budget taken: %v, %d reads; want to wait, having read the metadata only", err, reads.Load())
	}
	r.parsing.Release(DefaultParseBytes)
	if got, err := r.Members(context.Background(), segment("s", nil, "list/a")); err != nil || !slices.Equal(got, []string{"a1"}) {
		t.Fatalf("got %q, %v", got, err)
	}
}

// A Segment's share is what its keys weigh where known, the most a key may weigh where
// not, at most what a Segment may read.
func TestShare(t *testing.T) {
	r := NewReader(nil, nil, Limits{SegmentBytes: 3 * maxKeyWeight})
	known := &parsed{weight: 100}
	for _, tc := range []struct {
		name  string
		known []*parsed
		want  int64
	}{
		{"known", []*parsed{known}, 100},
		{"known twice", []*parsed{known, known}, 200},
		{"not read yet", []*parsed{nil}, maxKeyWeight},
		{"both", []*parsed{known, nil}, maxKeyWeight + 100},
		{"at most a Segment's budget", []*parsed{nil, nil, nil, nil, known}, 3 * maxKeyWeight},
		{"empty keys still take a byte", []*parsed{{}}, 1},
	} {
		if got := r.share(tc.known); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// A Reader never waits for a share larger than the manager's budget, whatever it is given.
func TestLimitsDefaults(t *testing.T) {
	for _, tc := range []struct {
		in, want Limits
		valid    bool
	}{
		{Limits{}, Limits{SegmentBytes: DefaultSegmentBytes, ParseBytes: DefaultParseBytes}, true},
		{Limits{SegmentBytes: 64 << 20}, Limits{SegmentBytes: 64 << 20, ParseBytes: 128 << 20}, true},
		{Limits{SegmentBytes: 1 << 20, ParseBytes: 2 << 20}, Limits{SegmentBytes: 1 << 20, ParseBytes: 2 << 20}, true},
		{Limits{SegmentBytes: 2 << 20, ParseBytes: 1 << 20}, Limits{SegmentBytes: 2 << 20, ParseBytes: 1 << 20}, false},
	} {
		got := tc.in.WithDefaults()
		if got != tc.want || (got.Validate() == nil) != tc.valid {
			t.Errorf("%+v: %+v, valid %v", tc.in, got, got.Validate())
		}
	}
	r := NewReader(nil, nil, Limits{SegmentBytes: 2 << 20, ParseBytes: 1 << 20})
	if r.limits.ParseBytes < r.limits.SegmentBytes {
		t.Fatalf("a Reader whose share may be larger than its budget: %+v", r.limits)
	}
}
