package recorder

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	eventsclient "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record/util"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/segment-operator/segment-operator/internal/apiretry"
)

const (
	// seriesWindow is how long after its last occurrence a repeat still counts in the same
	// Event (client-go's finishTime).
	seriesWindow = 6 * time.Minute
	// occurrences bounds the occurrences remembered; queued bounds the Events waiting to
	// be written (client-go's queue length).
	occurrences = 4096
	queued      = 1000
	// writers write Events side by side, so that a slow API server call does not hold the
	// others; tries bounds the attempts at writing one.
	writers = 4
	tries   = 3
	// maxNote is the longest note the API server accepts (events.k8s.io/v1).
	maxNote = 1024
)

// Options configure a Recorder.
type Options struct {
	// Controller is the reportingController of the Events; with "-" and the host name, it
	// is their reportingInstance.
	Controller string
	// SeriesEvery is how often the counts of repeated Events are written (default 10s).
	SeriesEvery time.Duration
	Log         logr.Logger
	Clock       clock.WithTicker
}

// Recorder writes Events; it is a manager.Runnable, and writes once it is started. It
// implements client-go's events.EventRecorder.
type Recorder struct {
	events   eventsclient.EventsV1Interface
	scheme   *runtime.Scheme
	opts     Options
	instance string
	queue    chan *eventsv1.Event
	dropped  atomic.Int64
	// pending counts the Events queued or being written.
	pending atomic.Int64

	mu sync.Mutex
	// seen is what was recorded of each occurrence (key → *occurrence), the least recently
	// seen forgotten first.
	seen *lru.Cache
	// repeated are the occurrences whose count has changed since it was last written.
	repeated map[key]*occurrence
}

// key is an occurrence: what happened to which object, as client-go tells isomorphic
// Events apart.
type key struct {
	eventType, reason, action string
	regarding, related        corev1.ObjectReference
}

// occurrence is the Event an occurrence was written as, and its count.
type occurrence struct {
	name, namespace string
	count           int32
	last            time.Time
	// written: the Event was created, so its series may be patched.
	written bool
}

// New makes a Recorder that writes Events through config, with httpClient.
func New(config *rest.Config, httpClient *http.Client, scheme *runtime.Scheme, opts Options) (*Recorder, error) {
	c, err := eventsclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, err
	}
	return newRecorder(c, scheme, opts), nil
}

func newRecorder(events eventsclient.EventsV1Interface, scheme *runtime.Scheme, opts Options) *Recorder {
	if opts.SeriesEvery <= 0 {
		opts.SeriesEvery = 10 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	r := &Recorder{events: events, scheme: scheme, opts: opts, queue: make(chan *eventsv1.Event, queued),
		repeated: map[key]*occurrence{}}
	host, _ := os.Hostname()
	r.instance = opts.Controller + "-" + host
	// A forgotten occurrence's count is not written: it is gone from repeated too.
	r.seen = lru.NewWithEvictionFunc(occurrences, func(k lru.Key, _ any) { delete(r.repeated, k.(key)) })
	return r
}

// Eventf records that eventtype (Normal or Warning) happened to regarding, for reason,
// doing action; related may be nil. It never blocks: the Event is written later.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	ref, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		r.opts.Log.Error(err, "Could not refer to the object of an Event: not recorded", "reason", reason)
		return
	}
	if !util.ValidateEventType(eventtype) {
		r.opts.Log.Error(nil, "Unsupported Event type: not recorded", "type", eventtype, "reason", reason)
		return
	}
	k := key{eventType: eventtype, reason: reason, action: action, regarding: *ref}
	if related != nil {
		if rel, err := reference.GetReference(r.scheme, related); err == nil {
			k.related = *rel
		}
	}
	// The note is formatted only when needed: a repeat that is not logged needs none.
	message, formatted := "", false
	if log := r.opts.Log.V(1); log.Enabled() {
		message, formatted = fmt.Sprintf(note, args...), true
		log.Info("Event", "type", eventtype, "reason", reason, "object", ref.Namespace+"/"+ref.Name, "note", message)
	}
	now := r.opts.Clock.Now()
	ev := r.observe(k, now)
	if ev == nil {
		return
	}
	if !formatted {
		message = fmt.Sprintf(note, args...)
	}
	ev.Note = truncate(message, maxNote)
	r.pending.Add(1)
	select {
	case r.queue <- ev:
	default:
		r.pending.Add(-1)
		r.forget(k)
		if n := r.dropped.Add(1); n == 1 || n%1000 == 0 {
			r.opts.Log.Info("Events dropped: the queue of Events to write is full", "dropped", n)
		}
	}
}

// observe counts an occurrence at now: a repeat within seriesWindow of its last counts in
// its Event's series (nil returned); anything else is a new Event, returned to be written.
func (r *Recorder) observe(k key, now time.Time) *eventsv1.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.seen.Get(k); ok {
		if o := v.(*occurrence); now.Sub(o.last) < seriesWindow {
			o.count++
			o.last = now
			r.repeated[k] = o
			return nil
		}
	}
	ns := k.regarding.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	o := &occurrence{name: util.GenerateEventName(k.regarding.Name, now.UnixNano()), namespace: ns, count: 1, last: now}
	r.seen.Add(k, o)
	delete(r.repeated, k)
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: o.name, Namespace: ns},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: r.opts.Controller,
		ReportingInstance:   r.instance,
		Action:              k.action,
		Reason:              k.reason,
		Regarding:           k.regarding,
		Type:                k.eventType,
	}
	if k.related != (corev1.ObjectReference{}) {
		rel := k.related
		ev.Related = &rel
	}
	return ev
}

// forget drops an occurrence whose Event will not be written.
func (r *Recorder) forget(k key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen.Remove(k)
}

// NeedLeaderElection is false: a manager that is not the leader still records Events of
// what it does (starting, say).
func (*Recorder) NeedLeaderElection() bool { return false }

// Start writes Events until ctx is done, then, for at most drainGrace in all, those
// queued and the counts of repeats. The writers go on after it returns, until the process
// ends: the manager stops this runnable before its controllers, whose last reconciles may
// still record.
func (r *Recorder) Start(ctx context.Context) error {
	writeCtx := context.WithoutCancel(ctx)
	for range writers {
		go func() {
			for ev := range r.queue {
				r.create(writeCtx, ev)
				r.pending.Add(-1)
			}
		}()
	}
	tick := r.opts.Clock.NewTicker(r.opts.SeriesEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(writeCtx, drainGrace)
			defer cancel()
			r.drain(stopCtx)
			return nil
		case <-tick.C():
			r.writeSeries(writeCtx)
		}
	}
}

// drainGrace bounds how long a stopping Recorder writes what it has: the manager gives all
// its runnables 30 s to stop.
const drainGrace = 5 * time.Second

// drain waits, until ctx ends, for the Events queued or being written, then writes the
// counts of repeats.
func (r *Recorder) drain(ctx context.Context) {
	for r.pending.Load() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	r.writeSeries(ctx)
}

// create writes a new Event, and marks its occurrence written so that repeats may be
// counted in it. An Event not written is forgotten: its next repeat is a new Event.
func (r *Recorder) create(ctx context.Context, ev *eventsv1.Event) {
	k := key{eventType: ev.Type, reason: ev.Reason, action: ev.Action, regarding: ev.Regarding, related: related(ev)}
	err := apiretry.Do(ctx, backoff, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		_, err := r.events.Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // its name is this occurrence's own: a retry after a lost answer
		}
		return err
	})
	if err != nil {
		r.opts.Log.Error(err, "Could not write an Event", "namespace", ev.Namespace, "object", ev.Regarding.Name, "reason", ev.Reason)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if o, ok := r.current(k, ev.Name); ok && err != nil {
		r.seen.Remove(k)
	} else if ok {
		o.written = true
	}
}

// current is k's occurrence if it is still the one written as the Event name: neither
// forgotten nor followed by a newer Event. r.mu is held.
func (r *Recorder) current(k key, name string) (*occurrence, bool) {
	v, ok := r.seen.Get(k)
	if !ok || v.(*occurrence).name != name {
		return nil, false
	}
	return v.(*occurrence), true
}

// writeSeries writes the counts of the Events that repeated since it last ran. An Event
// gone (deleted) is forgotten: its next repeat is a new one. A count not written for want
// of an answer is tried again at the next run.
func (r *Recorder) writeSeries(ctx context.Context) {
	type update struct {
		k               key
		name, namespace string
		patch           []byte
	}
	var updates []update
	r.mu.Lock()
	for k, o := range r.repeated {
		if !o.written {
			continue
		}
		delete(r.repeated, k)
		updates = append(updates, update{k, o.name, o.namespace, seriesPatch(o.count, o.last)})
	}
	r.mu.Unlock()
	for _, u := range updates {
		if ctx.Err() != nil {
			return
		}
		err := apiretry.Do(ctx, backoff, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			_, err := r.events.Events(u.namespace).Patch(ctx, u.name, types.MergePatchType, u.patch, metav1.PatchOptions{})
			return err
		})
		switch {
		case err == nil:
		case apierrors.IsNotFound(err):
			r.mu.Lock()
			if _, ok := r.current(u.k, u.name); ok {
				r.seen.Remove(u.k)
			}
			r.mu.Unlock()
		default:
			r.opts.Log.Error(err, "Could not write the count of a repeated Event", "namespace", u.namespace, "event", u.name)
			if apiretry.Retriable(err) {
				r.mu.Lock()
				if o, ok := r.current(u.k, u.name); ok {
					r.repeated[u.k] = o
				}
				r.mu.Unlock()
			}
		}
	}
}

// seriesPatch is the merge patch that sets an Event's series to count occurrences, the
// last at last.
func seriesPatch(count int32, last time.Time) []byte {
	patch, _ := json.Marshal(map[string]any{"series": eventsv1.EventSeries{Count: count, LastObservedTime: metav1.NewMicroTime(last)}})
	return patch
}

// backoff is how a write that got no answer is retried (apiretry.Do); callTimeout bounds
// each attempt.
var backoff = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.2, Steps: tries}

const callTimeout = 10 * time.Second

func related(ev *eventsv1.Event) corev1.ObjectReference {
	if ev.Related != nil {
		return *ev.Related
	}
	return corev1.ObjectReference{}
}

// truncate cuts s to at most n bytes, at the start of a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ForManager makes a Recorder of Events reported by controller, which writes them as mgr's
// user while mgr runs.
func ForManager(mgr manager.Manager, controller string) (*Recorder, error) {
	r, err := New(mgr.GetConfig(), mgr.GetHTTPClient(), mgr.GetScheme(), Options{Controller: controller, Log: mgr.GetLogger().WithName("events")})
	if err != nil {
		return nil, err
	}
	return r, mgr.Add(r)
}
