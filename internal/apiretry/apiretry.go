package apiretry

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Do calls call until it succeeds, fails with an error Retriable does not retry, backoff
// has no step left, or ctx ends; it returns call's last error (ctx's, if it ended first).
func Do(ctx context.Context, backoff wait.Backoff, call func(context.Context) error) error {
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		last = call(ctx)
		if last == nil || !Retriable(last) {
			return true, nil
		}
		return false, nil
	})
	if last == nil && err != nil {
		return err
	}
	if last != nil && ctx.Err() != nil && Retriable(last) {
		return errors.Join(last, ctx.Err())
	}
	return last
}

// Retriable says whether a call that failed with err may succeed if made again: it got no
// answer (a connection refused or reset, a timeout), or one that says to try later.
func Retriable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return apierrors.IsTooManyRequests(err) || apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) ||
			apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err)
	}
	return true
}
