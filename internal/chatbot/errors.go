package chatbot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/segment-operator/segment-operator/internal/text"
)

// maxErrorBody bounds how much of an error response is kept in an APIError.
const maxErrorBody = 4 << 10

// APIError is what every Client method returns when a call did not succeed: an HTTP
// error status from the API, or a network failure before any status arrived.
type APIError struct {
	// Op names the call: "list segments", "create segment", "add members",
	// "rename segment" or "delete segment".
	Op string
	// StatusCode is the HTTP status; 0 when the call failed before a response arrived.
	StatusCode int
	// Message is the server's explanation: the status message of a JSON error body, or the
	// body itself when it is not the documented JSON shape. For network failures, the cause.
	Message string
	// Body is the raw response body (at most 4 KiB), kept because the error format is not
	// documented.
	Body string
	// RetryAfter is how long the server asked the caller to wait (Retry-After on 429 or
	// 503); 0 when it did not say.
	RetryAfter time.Duration
	// Err is the underlying network error, if any.
	Err error
	// Local is true when the call was not sent at all: the client is pausing after a
	// Retry-After.
	Local bool
	// TooLarge is true when the answer was over the client's cap (MaxListingBytes) and
	// was not read: asking again soon is not likely to help.
	TooLarge bool
	// NotSent is true when the request certainly never reached the API: a local pause, a
	// client-side rate limit wait that gave up, or a connection that could not be opened.
	// A create that failed so had no effect.
	NotSent bool
}

// Error describes the failure without any credential.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("chatbot: ")
	b.WriteString(e.Op)
	if e.StatusCode == 0 {
		b.WriteString(": request failed")
	} else {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 && !e.Local {
		// The server's word only: a wait the client keeps itself changes from call to call,
		// and this text reaches status, where a changing text is a write.
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap returns the network error beneath, if any.
func (e *APIError) Unwrap() error { return e.Err }

// Retryable reports whether the same call may succeed later without any change on our side:
// rate limiting (429), server errors (5xx), a 2xx whose body could not be used, and network
// failures, timeouts included (the HTTP client reports its own timeout as
// context.DeadlineExceeded). Only a cancelled context is not retryable here: the caller
// gave up.
func (e *APIError) Retryable() bool {
	switch {
	case e.StatusCode == 0:
		return !errors.Is(e.Err, context.Canceled)
	case e.StatusCode == http.StatusTooManyRequests, e.StatusCode == http.StatusRequestTimeout:
		return true
	case e.StatusCode >= 200 && e.StatusCode < 300:
		return true // a success the client could not read (no ID, not JSON): ask again
	default:
		return e.StatusCode >= 500
	}
}

// Terminal reports whether the call will keep failing until the request or the credentials
// change (400, 401, 403, 404, 422 and any other 4xx).
func (e *APIError) Terminal() bool { return !e.Retryable() && e.StatusCode != 0 }

// NotFound reports a 404: the segment ID does not exist (any more).
func (e *APIError) NotFound() bool { return e.StatusCode == http.StatusNotFound }

// NoEffect reports whether the failed call certainly changed nothing in the account: it
// was never sent, or the API refused it as a client error (4xx, 429 included). A 5xx or a
// response lost on the way back may come after the change was made.
func (e *APIError) NoEffect() bool {
	return e.NotSent || e.StatusCode >= 400 && e.StatusCode < 500
}

// Unauthorized reports a 401 or 403: the token is missing, wrong or lacks access.
func (e *APIError) Unauthorized() bool {
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}

// AsAPIError returns the *APIError in err's chain, if any.
func AsAPIError(err error) (*APIError, bool) {
	var apiErr *APIError
	ok := errors.As(err, &apiErr)
	return apiErr, ok
}

// IsNotFound reports whether err is an API 404.
func IsNotFound(err error) bool {
	e, ok := AsAPIError(err)
	return ok && e.NotFound()
}

// IsRetryable reports whether err is an API error worth retrying unchanged.
func IsRetryable(err error) bool {
	e, ok := AsAPIError(err)
	return ok && e.Retryable()
}

// RetryAfter returns the wait the server asked for in err, or 0.
func RetryAfter(err error) time.Duration {
	if e, ok := AsAPIError(err); ok {
		return e.RetryAfter
	}
	return 0
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	// Delay-seconds is a whole number (RFC 9110); a fraction is tolerated. Anything absurd
	// (NaN, infinities, more than maxRetryAfter) is capped, never allowed to overflow.
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || secs <= 0 {
			return 0
		}
		return min(time.Duration(min(secs, maxRetryAfter.Seconds())*float64(time.Second)), maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// maxRetryAfter is the longest wait taken from a Retry-After header: a server that asks
// for more is waited on for an hour, then asked again.
const maxRetryAfter = time.Hour

// apiError builds the APIError for a non-2xx response, tolerating any body shape.
func (c *Client) apiError(op string, resp *http.Response, raw []byte) *APIError {
	e := &APIError{
		Op:         op,
		StatusCode: resp.StatusCode,
		Body:       c.body(raw),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	var doc struct {
		Status  *Status `json:"status"`
		Message string  `json:"message"`
		Error   any     `json:"error"`
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		// Not followed (see New): say where to, so that a moved API can be configured.
		e.Message = fmt.Sprintf("redirected to %s, not followed: the token is sent only to the configured API URL",
			RedactURL(resp.Header.Get("Location")))
	case json.Unmarshal(raw, &doc) == nil && doc.Status != nil && doc.Status.Message != "":
		e.Message = doc.Status.Message
	case doc.Message != "":
		e.Message = doc.Message
	case doc.Error != nil:
		e.Message = fmt.Sprint(doc.Error)
	default:
		e.Message = text.Cut(strings.TrimSpace(e.Body), 200)
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	e.Message = c.message(e.Message)
	return e
}

// neverSent reports whether a transport error happened before any byte of the request could
// reach the server: no address for the host, or no connection to it.
func neverSent(err error) bool {
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// networkCause describes a transport failure without the *url.Error's method and URL prefix.
func networkCause(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err.Error()
	}
	return err.Error()
}
