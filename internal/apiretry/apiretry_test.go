package apiretry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
)

var events = schema.GroupResource{Group: "events.k8s.io", Resource: "events"}

func TestRetriable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no answer", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{"no answer, wrapped", fmt.Errorf("review: %w", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}), true},
		{"429", apierrors.NewTooManyRequests("slow down", 1), true},
		{"500", apierrors.NewInternalError(errors.New("boom")), true},
		{"503", apierrors.NewServiceUnavailable("later"), true},
		{"504", apierrors.NewTimeoutError("slow", 1), true},
		{"403", apierrors.NewForbidden(events, "x", errors.New("no")), false},
		{"404", apierrors.NewNotFound(events, "x"), false},
		{"409", apierrors.NewAlreadyExists(events, "x"), false},
		{"422", apierrors.NewInvalid(schema.GroupKind{Kind: "Event"}, "x", nil), false},
		{"canceled", context.Canceled, false},
		{"none", nil, false},
	} {
		if got := Retriable(tc.err); got != tc.want {
			t.Errorf("%s: Retriable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDo(t *testing.T) {
	fast := wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}
	for _, tc := range []struct {
		name      string
		answers   []error
		wantCalls int
		wantErr   bool
	}{
		{"succeeds at once", []error{nil}, 1, false},
		{"retried until it succeeds", []error{apierrors.NewServiceUnavailable("later"), nil}, 2, false},
		{"an answer that would come again is not retried", []error{apierrors.NewForbidden(events, "x", errors.New("no")), nil}, 1, true},
		{"at most the backoff's steps", []error{errors.New("refused"), errors.New("refused"), errors.New("refused"), nil}, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Do(t.Context(), fast, func(context.Context) error {
				calls++
				return tc.answers[calls-1]
			})
			if calls != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Errorf("%d calls, error %v; want %d calls, error %v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
	// A context that ends stops the retries, however many steps are left.
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	err := Do(ctx, wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1000}, func(context.Context) error {
		if calls++; calls == 2 {
			cancel()
		}
		return errors.New("refused")
	})
	if calls != 2 || !errors.Is(err, context.Canceled) {
		t.Errorf("%d calls, error %v; want 2 calls, then the context's end", calls, err)
	}
}
