package controller

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/sources"
)

// A source the Segment cannot use stops it (MembersSourceError); an API server that does
// not answer (a timeout) is an error to retry with backoff, and stops nothing. (What a
// source may hold: internal/sources.)
func TestDesiredMembersStallsOnlyForTheSource(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	labelled := map[string]string{usersv1alpha1.MembersLabel: "true"}
	objs := []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "good", Namespace: "team", Labels: labelled}, Data: map[string]string{"ids": "u2\nu1\n"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "team", Labels: labelled}, Data: map[string]string{"ids": "u1\n-\n"}},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	down := interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build(), interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return apierrors.NewTimeoutError("the API server is slow", 1)
		}})
	for _, tc := range []struct {
		name   string
		reader client.Reader
		source string
		want   []string
		stall  string // the stall's message, or "" for none
		retry  bool   // an error, not a stall
	}{
		{"read and unioned", c, "good", []string{"m1", "u1", "u2"}, "", false},
		{"a bad line", c, "bad", nil, `line 2: "-"`, false},
		{"missing", c, "gone", nil, `ConfigMap "gone" named by spec.membersFrom not found`, false},
		{"the API server times out", down, "good", nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &SegmentReconciler{Client: c, sources: sources.NewReader(c, tc.reader, sources.Limits{})}
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "team"},
				Spec: usersv1alpha1.SegmentSpec{Members: []string{"m1"},
					MembersFrom: []usersv1alpha1.MembersSource{{ConfigMap: tc.source, Key: "ids"}}}}
			got, err := desiredMembers(context.Background(), r.sources, seg)
			var stalled *stallError
			switch {
			case tc.stall != "" && (!errors.As(err, &stalled) || stalled.reason != usersv1alpha1.ReasonMembersSourceError ||
				!strings.Contains(stalled.msg, tc.stall)):
				t.Fatalf("err = %v, want a MembersSourceError saying %q", err, tc.stall)
			case tc.retry && (err == nil || errors.As(err, &stalled)):
				t.Fatalf("err = %v, want an error to retry, not a stall", err)
			case tc.stall == "" && !tc.retry && (err != nil || !slices.Equal(got, tc.want)):
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// A change to a ConfigMap enqueues the Segments of its namespace that name it in
// spec.membersFrom, and no others.
func TestAConfigMapEnqueuesTheSegmentsNamingIt(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = usersv1alpha1.AddToScheme(scheme)
	from := func(ns, name string, cms ...string) *usersv1alpha1.Segment {
		seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		for _, cm := range cms {
			seg.Spec.MembersFrom = append(seg.Spec.MembersFrom, usersv1alpha1.MembersSource{ConfigMap: cm, Key: "ids"})
		}
		return seg
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithIndex(&usersv1alpha1.Segment{}, indexMembersFrom, indexByMembersFrom).
		WithObjects(from("team", "a", "list"), from("team", "b", "other", "list", "list"), from("team", "c", "other"),
			from("elsewhere", "d", "list"), from("team", "e")).Build()
	r := &SegmentReconciler{Client: c}
	q := &enqueued{}
	namedBy(r.Client, nil, indexMembersFrom).Create(context.Background(),
		event.TypedCreateEvent[client.Object]{Object: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "list", Namespace: "team"}}}, q)
	if got := q.names(); !slices.Equal(got, []string{"team/a", "team/b"}) {
		t.Fatalf("enqueued %q, want team/a and team/b", got)
	}
}

// enqueued records what a handler adds to the queue.
type enqueued struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	reqs []reconcile.Request
}

func (q *enqueued) Add(r reconcile.Request) { q.reqs = append(q.reqs, r) }

func (q *enqueued) names() []string {
	var out []string
	for _, r := range q.reqs {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}
