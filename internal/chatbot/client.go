package chatbot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/segment-operator/segment-operator/internal/text"
	"github.com/segment-operator/segment-operator/internal/version"
)

// DefaultBaseURL is the ChatBot API host.
const DefaultBaseURL = "https://api.chatbot.com"

// MaxTokenLength is the longest token a client takes, in bytes: far more than a ChatBot
// Developer access token needs.
const MaxTokenLength = 512

// DefaultTimeout bounds one HTTP call, connection and body included.
const DefaultTimeout = 30 * time.Second

// maxIdleConnsPerHost is how many idle connections to one API host every client keeps for
// reuse: about as many as calls go at once. net/http's default keeps 2, so that every
// call past the second opened a connection (and a TLS session) of its own, and closed it.
const maxIdleConnsPerHost = 64

// transport is the connections every client shares (the accounts of one API host share
// its pool): net/http's default transport, keeping more idle connections per host.
var transport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = maxIdleConnsPerHost
	t.MaxIdleConns = max(t.MaxIdleConns, maxIdleConnsPerHost)
	return t
}()

// Operation names, used in errors and reported to an Observer.
const (
	OpList   = "list segments"
	OpCreate = "create segment"
	OpAdd    = "add members"
	OpRename = "rename segment"
	OpDelete = "delete segment"
)

// segmentsPath is the collection path; the legacy v1 API served /segments instead.
const segmentsPath = "/users/segments"

// Limiter paces calls; *rate.Limiter from golang.org/x/time/rate satisfies it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// queueLimiter is a Limiter that can tell how long its queue is, as *rate.Limiter can: its
// tokens go below zero by the calls waiting their turn.
type queueLimiter interface {
	Tokens() float64
	Limit() rate.Limit
}

// Observer is told of every call the client makes: its operation, the HTTP status (0 for a
// network failure) and how long it took. Used for metrics.
type Observer func(op string, statusCode int, elapsed time.Duration)

// secret holds the token so that formatting it directly prints "[redacted]". The Client
// holds it by pointer, so that even a copy of a Client printed with %+v (where fmt cannot
// call String on an unexported field) shows an address, not the token.
type secret string

func (secret) String() string   { return "[redacted]" }
func (secret) GoString() string { return "[redacted]" }

// Client talks to one ChatBot account: one base URL, one Developer access token.
// It is safe for concurrent use. It does not retry: every failure is returned as an
// *APIError that says whether, and after how long, a retry makes sense. After the API
// answers 429 or 503 with Retry-After, the client refuses every call until that time has
// passed, without sending it: an *APIError with status 429, Local set and the remaining
// wait in RetryAfter.
type Client struct {
	base      *url.URL
	token     *secret
	redactor  *redactor // by pointer, like token: it holds pieces of the token
	http      *http.Client
	userAgent string
	limiter   Limiter
	observe   Observer

	// refusal holds calls back while the API refuses the token.
	refusal refusal

	// pausedUntil (Unix nanoseconds) is set by a 429 or 503 with Retry-After: until then
	// the client sends nothing, so that every caller sharing it honours the wait.
	pausedUntil atomic.Int64
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default HTTP client (30s timeout). The client never follows
// redirects, whatever h says: see New.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithUserAgent replaces the default User-Agent, "segment-operator/<version>".
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithLimiter makes every call wait for l first: a client-side rate limit. With a
// *rate.Limiter, Backlog tells how long the queue is.
func WithLimiter(l Limiter) Option { return func(c *Client) { c.limiter = l } }

// WithObserver reports every call to o.
func WithObserver(o Observer) Option { return func(c *Client) { c.observe = o } }

// New returns a client for the API at baseURL ("" means DefaultBaseURL) that authenticates
// with token. It follows no redirect: the token goes to the base URL's origin and nowhere
// else, and a 3xx answer is an *APIError naming where it pointed.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		// Not err itself: a *url.Error quotes the whole URL, password included.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("chatbot: invalid base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("chatbot: base URL %q must be http(s)://host[:port][/path]", u.Redacted())
	}
	if token == "" {
		return nil, errors.New("chatbot: empty API token")
	}
	if len(token) > MaxTokenLength {
		// A Secret's token is anyone's to write; what the client keeps per token (its
		// redactor) must stay small.
		return nil, fmt.Errorf("chatbot: API token of %d bytes refused: a ChatBot token has at most %d", len(token), MaxTokenLength)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{
		base:      u,
		token:     (*secret)(&token),
		redactor:  newRedactor(token),
		http:      &http.Client{Timeout: DefaultTimeout, Transport: transport},
		userAgent: version.UserAgent(),
		refusal:   refusal{base: DefaultRefusalBackoff, most: DefaultRefusalMaxBackoff},
	}
	for _, opt := range opts {
		opt(c)
	}
	h := *c.http // a copy: the caller's client keeps its own redirect policy
	h.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &h
	return c, nil
}

// String describes the client without its token; fmt cannot see that the unexported
// token field redacts itself, so the whole client must.
func (c *Client) String() string { return "chatbot.Client{" + c.base.Redacted() + "}" }

// GoString is String, for %#v.
func (c *Client) GoString() string { return c.String() }

// RedactURL returns s with any password in it replaced by "xxxxx", for logs and messages;
// a URL that does not parse is not shown at all.
func RedactURL(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// BaseURL returns the API base URL the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

// ListSegments returns every segment of the account. It is the only way to observe a
// segment: the API has no get-by-id.
// A listing larger than MaxListingBytes is refused: an *APIError, retryable.
func (c *Client) ListSegments(ctx context.Context) ([]Segment, error) {
	var segments []Segment
	if err := c.do(ctx, OpList, http.MethodGet, segmentsPath, nil, listDecoder{&segments}); err != nil {
		return nil, err
	}
	return segments, nil
}

// CreateSegment creates a segment and returns it: its ID, its name, no members, and as
// CreatedAt the response's timestamp (the closest the create call says to it). The call is
// not idempotent: calling it twice creates two segments with the same name.
func (c *Client) CreateSegment(ctx context.Context, name string) (Segment, error) {
	var resp WriteResponse
	if err := c.do(ctx, OpCreate, http.MethodPost, segmentsPath, createRequest{Name: name}, &resp); err != nil {
		return Segment{}, err
	}
	if resp.ID == "" {
		return Segment{}, &APIError{Op: OpCreate, StatusCode: http.StatusOK, Message: "response carries no segment id"}
	}
	return Segment{ID: resp.ID, Name: name, CreatedAt: resp.Timestamp}, nil
}

// RenameSegment sets the name of segment id.
func (c *Client) RenameSegment(ctx context.Context, id, name string) error {
	return c.do(ctx, OpRename, http.MethodPut, segmentsPath+"/"+url.PathEscape(id), renameRequest{Name: name}, nil)
}

// DeleteSegment deletes segment id. A segment that does not exist gives a 404 APIError.
func (c *Client) DeleteSegment(ctx context.Context, id string) error {
	return c.do(ctx, OpDelete, http.MethodDelete, segmentsPath+"/"+url.PathEscape(id), nil, nil)
}

// AddMembers adds users to segments; the API takes at most 100 segments and 1000 users per
// call, so larger sets are split (see Batches). Users are sent in order, and each group of
// 1000 goes to every segment before the next group starts, so on failure added is the
// length of the prefix of users now known to be members of every segment. Members cannot be
// removed again: the API has no remove-member endpoint.
func (c *Client) AddMembers(ctx context.Context, segmentIDs, users []string) (added int, err error) {
	if len(segmentIDs) == 0 || len(users) == 0 {
		return len(users), nil
	}
	for _, b := range Batches(segmentIDs, users) {
		req := addMembersRequest{Segments: b.Segments, Users: b.Users}
		if err := c.do(ctx, OpAdd, http.MethodPost, segmentsPath+"/members", req, nil); err != nil {
			return added, err
		}
		if b.LastOfUsers {
			added = b.UsersEnd
		}
	}
	return added, nil
}

// AddMembersGathered sends one add-members call of users (1-1000) to the segments gather
// returns (1-100 IDs). gather is called once, when the client-side rate limit and any
// Retry-After pause let the call go, so a caller can merge into it the requests that arrive
// while it waits (see remote.MemberAdder). If the call is never sent, gather is not called.
func (c *Client) AddMembersGathered(ctx context.Context, users []string, gather func() []string) error {
	if len(users) == 0 || len(users) > MaxUsersPerAdd {
		return fmt.Errorf("chatbot: %s: a gathered call takes 1-%d users, got %d", OpAdd, MaxUsersPerAdd, len(users))
	}
	var segments []string
	err := c.do(ctx, OpAdd, http.MethodPost, segmentsPath+"/members", func() any {
		segments = gather()
		if len(segments) == 0 || len(segments) > MaxSegmentsPerAdd {
			return errGatheredSegments
		}
		return addMembersRequest{Segments: segments, Users: users}
	}, nil)
	if errors.Is(err, errGatheredSegments) {
		return fmt.Errorf("chatbot: %s: a gathered call takes 1-%d segments, got %d", OpAdd, MaxSegmentsPerAdd, len(segments))
	}
	return err
}

// errGatheredSegments stops a gathered call whose segment list the API would refuse.
var errGatheredSegments = errors.New("gathered segments out of range")

// do performs one call and decodes a 2xx JSON body into out (if non-nil). in may be a
// func() any, called for the body once the call is allowed to go; if that returns an
// error, nothing is sent and do returns it.
func (c *Client) do(ctx context.Context, op, method, path string, in, out any) (err error) {
	if err := c.CheckPause(op); err != nil {
		return err
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return &APIError{Op: op, Message: "waiting for client-side rate limit: " + err.Error(), Err: err, NotSent: true}
		}
		// A 429 may have arrived while this call waited its turn: honour it too.
		if err := c.paused(op); err != nil {
			return err
		}
	}
	probe, err := c.refusal.admit(op, true)
	if err != nil {
		return err
	}
	status := 0
	defer func() {
		apiErr, _ := AsAPIError(err)
		c.refusal.report(probe, status, apiErr)
	}()
	if gather, ok := in.(func() any); ok {
		in = gather() // the call goes now: a gathered body is final only at this point
		if err, ok := in.(error); ok {
			return err // the body cannot be sent
		}
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("chatbot: %s: encode request: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	u := *c.base // path is escaped already (IDs in it went through url.PathEscape)
	u.RawPath = u.EscapedPath() + path
	u.Path, _ = url.PathUnescape(u.RawPath) // cannot fail: both parts are escaped
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("chatbot: %s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+string(*c.token))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	if c.observe != nil {
		defer func() { c.observe(op, status, time.Since(start)) }()
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &APIError{Op: op, Message: c.message(networkCause(err)), Err: err, NotSent: neverSent(err)}
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	if list, ok := out.(listDecoder); ok && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		body := &cappedReader{r: resp.Body, left: MaxListingBytes}
		err := list.decode(body)
		switch {
		case errors.Is(body.err, errTooLarge):
			return &APIError{Op: op, StatusCode: status, TooLarge: true,
				Message: fmt.Sprintf("listing larger than %d MiB: refused", MaxListingBytes>>20)}
		case body.err != nil:
			status = 0
			return &APIError{Op: op, Message: c.message("reading response: " + networkCause(body.err)), Err: body.err}
		case err != nil:
			return &APIError{Op: op, StatusCode: status, Message: c.message("undecodable response: " + err.Error())}
		}
		return nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		status = 0
		return &APIError{Op: op, Message: c.message("reading response: " + networkCause(err)), Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := c.apiError(op, resp, raw)
		if resp.StatusCode == http.StatusUnauthorized {
			// One text for sent and held-back refusals: it reaches status.
			apiErr.Message = text.Cut(c.refusal.refusedMessage(apiErr.Message), maxErrorMessage)
			apiErr.RetryAfter = 0
		}
		if apiErr.RetryAfter > 0 && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			c.pause(time.Now().Add(apiErr.RetryAfter))
		}
		return apiErr
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &APIError{Op: op, StatusCode: status, Message: c.message("undecodable response: " + err.Error()),
			Body: c.body(raw)}
	}
	return nil
}

// CheckPause returns the error a call of op would get now without being sent, because the
// API asked for a pause (Retry-After) or refused the token (a 401, for a while), or nil.
// Callers use it to skip the preparations of a call that cannot go yet.
func (c *Client) CheckPause(op string) error {
	if err := c.paused(op); err != nil {
		return err
	}
	_, err := c.refusal.admit(op, false)
	return err
}

// Backlog returns how long a call made now would wait for the client-side rate limit,
// behind the calls already waiting their turn: 0 without a limiter, or with one that
// cannot tell (see WithLimiter).
func (c *Client) Backlog() time.Duration {
	l, ok := c.limiter.(queueLimiter)
	if !ok {
		return 0
	}
	return backlog(l.Tokens(), float64(l.Limit()))
}

// backlog is how long a limiter holding tokens (below zero by the calls queued) at
// perSecond makes a new call wait for its token.
func backlog(tokens, perSecond float64) time.Duration {
	if tokens >= 1 || perSecond <= 0 {
		return 0
	}
	return time.Duration((1 - tokens) / perSecond * float64(time.Second))
}

// paused returns the error for a call refused during a Retry-After pause, or nil.
func (c *Client) paused(op string) error {
	if wait := time.Until(time.Unix(0, c.pausedUntil.Load())); wait > 0 {
		return &APIError{Op: op, StatusCode: http.StatusTooManyRequests, Local: true, NotSent: true, RetryAfter: wait,
			Message: "not sent: the API asked for a pause (Retry-After)"}
	}
	return nil
}

// pause makes the client send nothing until t (or a later pause already set).
func (c *Client) pause(t time.Time) {
	for {
		cur := c.pausedUntil.Load()
		if cur >= t.UnixNano() || c.pausedUntil.CompareAndSwap(cur, t.UnixNano()) {
			return
		}
	}
}

// redact removes echoes of the token from text the API sent back (see redactor).
func (c *Client) redact(s string) string { return c.redactor.redact(s) }

// body is a response body as an APIError keeps it: redacted whole (a cut could split the
// token), then cut to maxErrorBody.
func (c *Client) body(raw []byte) string { return text.Cut(c.redact(string(raw)), maxErrorBody) }

// message is s made fit for APIError.Message, which reaches conditions, events and logs:
// redacted, and at most maxErrorMessage bytes.
func (c *Client) message(s string) string { return text.Cut(c.redact(s), maxErrorMessage) }
