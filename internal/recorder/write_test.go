package recorder

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/kubernetes/typed/events/v1/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/reference"
)

// api answers the Recorder's writes as told: creates and patches, counted by verb.
type api struct {
	mu     sync.Mutex
	calls  map[string]int
	answer map[string]error // by verb; nil: success
	delay  time.Duration    // before each answer
}

func newAPI() (*api, *fake.FakeEventsV1) {
	a := &api{calls: map[string]int{}, answer: map[string]error{}}
	f := &fake.FakeEventsV1{Fake: &k8stesting.Fake{}}
	f.AddReactor("*", "events", func(action k8stesting.Action) (bool, runtime.Object, error) {
		a.mu.Lock()
		delay := a.delay
		a.mu.Unlock()
		time.Sleep(delay)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.calls[action.GetVerb()]++
		return true, &eventsv1.Event{}, a.answer[action.GetVerb()]
	})
	return a, f
}

func (a *api) count(verb string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[verb]
}

func (a *api) set(verb string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answer[verb] = err
}

var regarding = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "team", UID: "u1", ResourceVersion: "1"}}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not so after 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An Event the API server refused is forgotten: its repeat is written as a new Event,
// not counted in one that does not exist.
func TestAnEventNotWrittenIsWrittenAtItsRepeat(t *testing.T) {
	a, f := newAPI()
	r := newRecorder(f, scheme.Scheme, Options{Controller: "segment-operator", SeriesEvery: 10 * time.Millisecond})
	go r.Start(t.Context()) //nolint:errcheck // returns nil

	a.set("create", apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", nil))
	r.Eventf(regarding, nil, corev1.EventTypeWarning, "RemoteError", "Sync", "failed")
	eventually(t, "one create refused", func() bool { return a.count("create") == 1 })
	eventually(t, "the refused Event forgotten", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.seen.Len() == 0 })

	a.set("create", nil)
	r.Eventf(regarding, nil, corev1.EventTypeWarning, "RemoteError", "Sync", "failed")
	eventually(t, "the repeat created", func() bool { return a.count("create") == 2 })
}

// An Event deleted before its count is written is forgotten: the next repeat is a new
// Event.
func TestAnEventGoneIsWrittenAnewAtItsRepeat(t *testing.T) {
	a, f := newAPI()
	r := newRecorder(f, scheme.Scheme, Options{Controller: "segment-operator", SeriesEvery: 10 * time.Millisecond})
	go r.Start(t.Context()) //nolint:errcheck // returns nil

	r.Eventf(regarding, nil, corev1.EventTypeWarning, "RemoteError", "Sync", "failed")
	eventually(t, "created", func() bool { return a.count("create") == 1 })
	eventually(t, "marked written", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		v, ok := r.seen.Get(key{eventType: corev1.EventTypeWarning, reason: "RemoteError", action: "Sync", regarding: ref})
		return ok && v.(*occurrence).written
	})
	a.set("patch", apierrors.NewNotFound(schema.GroupResource{Resource: "events"}, "cm.1"))
	r.Eventf(regarding, nil, corev1.EventTypeWarning, "RemoteError", "Sync", "failed")
	eventually(t, "the count's patch answered NotFound", func() bool { return a.count("patch") == 1 })
	eventually(t, "the Event forgotten", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.seen.Len() == 0 })
	r.Eventf(regarding, nil, corev1.EventTypeWarning, "RemoteError", "Sync", "failed")
	eventually(t, "the next repeat created anew", func() bool { return a.count("create") == 2 })
}

// Past the queue's length, Events are dropped and counted, and their occurrences
// forgotten.
func TestAFullQueueDrops(t *testing.T) {
	_, f := newAPI()
	r := newRecorder(f, scheme.Scheme, Options{Controller: "segment-operator"})
	for i := range queued + 5 {
		r.Eventf(other(i), nil, corev1.EventTypeNormal, "Created", "Create", "made")
	}
	if n := r.dropped.Load(); n != 5 {
		t.Errorf("%d dropped, want 5", n)
	}
	if n := r.seen.Len(); n != queued {
		t.Errorf("%d occurrences remembered, want the %d queued", n, queued)
	}
}

// A stopping Recorder returns once the Events queued are written, not merely taken from
// the queue.
func TestAStopWritesTheQueued(t *testing.T) {
	a, f := newAPI()
	a.delay = 50 * time.Millisecond
	r := newRecorder(f, scheme.Scheme, Options{Controller: "segment-operator"})
	for i := range 2 * writers {
		r.Eventf(other(i), nil, corev1.EventTypeNormal, "Created", "Create", "made")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := a.count("create"); n != 2*writers {
		t.Errorf("%d of %d Events written when Start returned", n, 2*writers)
	}
}

// A stopping Recorder gives up on what the API server does not answer within drainGrace
// in all: the manager gives every runnable 30 s together. Each of these counts alone
// would take its retries' 3 s.
func TestAStopIsBounded(t *testing.T) {
	a, f := newAPI()
	r := newRecorder(f, scheme.Scheme, Options{Controller: "segment-operator", SeriesEvery: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = r.Start(ctx); close(done) }()
	const n = 20
	for i := range n {
		r.Eventf(other(i), nil, corev1.EventTypeWarning, "RemoteError", "Sync", "failed")
	}
	eventually(t, "the Events created", func() bool { return a.count("create") == n })
	eventually(t, "marked written", func() bool { return written(r, others(n)...) == n })
	for i := range n {
		r.Eventf(other(i), nil, corev1.EventTypeWarning, "RemoteError", "Sync", "failed")
	}
	a.set("patch", apierrors.NewServiceUnavailable("later"))
	cancel()
	select {
	case <-done:
	case <-time.After(4 * drainGrace):
		t.Fatalf("Start still writing counts %s after it was stopped", 4*drainGrace)
	}
	if a.count("patch") >= n {
		t.Errorf("every count tried (%d patches) though none was answered", a.count("patch"))
	}
}

// An Event whose create was answered AlreadyExists (its answer lost, the retry finding
// it) is the occurrence's: its repeats are counted in it, not written as a new Event; and
// a count refused (403) keeps the Event.
func TestAnEventAlreadyMadeOrRefusedAPatchStays(t *testing.T) {
	a, f := newAPI()
	r := newRecorder(f, scheme.Scheme, Options{Controller: "segment-operator", SeriesEvery: 10 * time.Millisecond})
	go r.Start(t.Context()) //nolint:errcheck // returns nil
	a.set("create", apierrors.NewAlreadyExists(schema.GroupResource{Resource: "events"}, "cm.1"))
	a.set("patch", apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "cm.1", nil))
	r.Eventf(regarding, nil, corev1.EventTypeWarning, "RemoteError", "Sync", "failed")
	eventually(t, "marked written", func() bool { return written(r, regarding) == 1 })
	r.Eventf(regarding, nil, corev1.EventTypeWarning, "RemoteError", "Sync", "failed")
	eventually(t, "its count tried", func() bool { return a.count("patch") == 1 })
	r.Eventf(regarding, nil, corev1.EventTypeWarning, "RemoteError", "Sync", "failed")
	eventually(t, "its next count tried", func() bool { return a.count("patch") == 2 })
	if n := a.count("create"); n != 1 {
		t.Errorf("%d creates; want 1: the repeats are the first Event's", n)
	}
}

// other is the i-th of several objects.
func other(i int) *corev1.ConfigMap {
	cm := regarding.DeepCopy()
	cm.UID = types.UID(strconv.Itoa(i))
	return cm
}

// written is how many of the objects' RemoteError warnings have their Event written.
func written(r *Recorder, objs ...*corev1.ConfigMap) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, o := range objs {
		ref, err := reference.GetReference(scheme.Scheme, o)
		if err != nil {
			panic(err)
		}
		k := key{eventType: corev1.EventTypeWarning, reason: "RemoteError", action: "Sync", regarding: *ref}
		if v, ok := r.seen.Get(k); ok && v.(*occurrence).written {
			n++
		}
	}
	return n
}

// others are the first n of other.
func others(n int) []*corev1.ConfigMap {
	out := make([]*corev1.ConfigMap, n)
	for i := range out {
		out[i] = other(i)
	}
	return out
}

// ref is what the Recorder makes of regarding.
var ref = corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: "team", Name: "cm", UID: "u1", ResourceVersion: "1"}
