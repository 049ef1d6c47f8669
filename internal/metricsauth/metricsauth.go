package metricsauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/segment-operator/segment-operator/internal/apiretry"
)

const (
	// The times an answer is kept are controller-runtime's filter's: a token's review for a
	// minute; a permission for 5 minutes, its refusal for 30 seconds.
	authenticatedTTL   = time.Minute
	unauthenticatedTTL = time.Minute
	allowedTTL         = 5 * time.Minute
	deniedTTL          = 30 * time.Second
	// reviewTimeout bounds each review, so that a slow API server fails one scrape rather
	// than holding its connection.
	reviewTimeout = 10 * time.Second
	// cacheEntries bounds each cache: past it, the answer used least recently is forgotten
	// and asked again when needed. A scraper or two need a handful.
	cacheEntries = 1024
)

// Filter is a metricsserver.FilterProvider: the filter it makes serves a request only to a
// caller the API server authenticates by bearer token and authorizes to get its path.
func Filter(config *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	tokens, err := authenticationclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, err
	}
	access, err := authorizationclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, err
	}
	g := newGate(tokens.TokenReviews(), access.SubjectAccessReviews(), clock.RealClock{})
	return func(log logr.Logger, handler http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if code, msg, err := g.check(req); code != http.StatusOK {
				if err != nil {
					log.Error(err, msg)
				}
				http.Error(w, msg, code)
				return
			}
			handler.ServeHTTP(w, req)
		}), nil
	}, nil
}

// tokenReviewer and accessReviewer are the two client-go calls a gate makes.
type tokenReviewer interface {
	Create(context.Context, *authenticationv1.TokenReview, metav1.CreateOptions) (*authenticationv1.TokenReview, error)
}
type accessReviewer interface {
	Create(context.Context, *authorizationv1.SubjectAccessReview, metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error)
}

// gate decides who may read: it asks the API server, and keeps its answers.
type gate struct {
	tokens tokenReviewer
	access accessReviewer
	// users is the user each token is (a zero UserInfo: none), keyed by the token's hash:
	// no token is kept.
	users *ttlCache[authenticationv1.UserInfo]
	// allowed is whether a user may do a verb on a path, keyed by accessKey.
	allowed *ttlCache[bool]
}

func newGate(tokens tokenReviewer, access accessReviewer, clk clock.PassiveClock) *gate {
	return &gate{tokens: tokens, access: access,
		users:   newTTLCache[authenticationv1.UserInfo](cacheEntries, clk),
		allowed: newTTLCache[bool](cacheEntries, clk)}
}

// check says whether req may be served: http.StatusOK, or the status and message to answer
// with, and the error when the API server could not answer.
func (g *gate) check(req *http.Request) (int, string, error) {
	token, ok := bearerToken(req.Header.Get("Authorization"))
	if !ok {
		return http.StatusUnauthorized, "Unauthorized", nil
	}
	user, err := g.user(req.Context(), token)
	if err != nil {
		return http.StatusInternalServerError, "Authentication failed", err
	}
	if user.Username == "" {
		return http.StatusUnauthorized, "Unauthorized", nil
	}
	verb := strings.ToLower(req.Method)
	allowed, err := g.may(req.Context(), user, verb, req.URL.Path)
	if err != nil {
		return http.StatusInternalServerError, fmt.Sprintf("Authorization for user %s failed", user.Username), err
	}
	if !allowed {
		return http.StatusForbidden, fmt.Sprintf("Authorization denied for user %s", user.Username), nil
	}
	return http.StatusOK, "", nil
}

// user is who token is, by a TokenReview: the zero UserInfo when the API server does not
// authenticate it.
func (g *gate) user(ctx context.Context, token string) (authenticationv1.UserInfo, error) {
	sum := sha256.Sum256([]byte(token))
	key := string(sum[:])
	if u, ok := g.users.get(key); ok {
		return u, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	var review *authenticationv1.TokenReview
	err := apiretry.Do(ctx, backoff, func(ctx context.Context) (err error) {
		review, err = g.tokens.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("review the caller's token: %w", err)
	}
	if !review.Status.Authenticated {
		g.users.add(key, authenticationv1.UserInfo{}, unauthenticatedTTL)
		return authenticationv1.UserInfo{}, nil
	}
	g.users.add(key, review.Status.User, authenticatedTTL)
	return review.Status.User, nil
}

// may is whether user may do verb on the non-resource URL path, by a SubjectAccessReview.
func (g *gate) may(ctx context.Context, user authenticationv1.UserInfo, verb, path string) (bool, error) {
	key := accessKey(user, verb, path)
	if allowed, ok := g.allowed.get(key); ok {
		return allowed, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	var review *authorizationv1.SubjectAccessReview
	err := apiretry.Do(ctx, backoff, func(ctx context.Context) (err error) {
		review, err = g.access.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
		}}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("review whether %s may %s %s: %w", user.Username, verb, path, err)
	}
	allowed := review.Status.Allowed && !review.Status.Denied
	ttl := deniedTTL
	if allowed {
		ttl = allowedTTL
	}
	g.allowed.add(key, allowed, ttl)
	return allowed, nil
}

// backoff is how a review that got no answer, or a 429 or 5xx, is retried
// (apiretry.Do), within reviewTimeout: controller-runtime's filter's.
var backoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// bearerToken is the token of an Authorization header "Bearer <token>" (the scheme in any
// case, as RFC 7235 has it), and whether there is one.
func bearerToken(header string) (string, bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != "" && !strings.ContainsAny(token, " \t")
}

// accessKey names a question for a SubjectAccessReview: the user (name, UID, groups and
// extra, in a fixed order), the verb and the path. Each part is quoted, so that no two
// questions share a key.
func accessKey(user authenticationv1.UserInfo, verb, path string) string {
	var b strings.Builder
	for _, s := range []string{user.Username, user.UID, verb, path} {
		fmt.Fprintf(&b, "%q ", s)
	}
	groups := slices.Sorted(slices.Values(user.Groups))
	fmt.Fprintf(&b, "%q ", groups)
	keys := make([]string, 0, len(user.Extra))
	for k := range user.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%q ", k, []string(user.Extra[k]))
	}
	return b.String()
}

// ttlCache keeps at most a fixed number of answers, each until it expires; past the
// number, the one used least recently goes.
type ttlCache[V any] struct {
	entries *lru.Cache
	clock   clock.PassiveClock
}

type ttlEntry[V any] struct {
	value   V
	expires time.Time
}

func newTTLCache[V any](size int, clk clock.PassiveClock) *ttlCache[V] {
	return &ttlCache[V]{entries: lru.New(size), clock: clk}
}

func (c *ttlCache[V]) get(key string) (V, bool) {
	if e, ok := c.entries.Get(key); ok {
		if e := e.(ttlEntry[V]); c.clock.Now().Before(e.expires) {
			return e.value, true
		}
		c.entries.Remove(key)
	}
	var zero V
	return zero, false
}

func (c *ttlCache[V]) add(key string, value V, ttl time.Duration) {
	c.entries.Add(key, ttlEntry[V]{value: value, expires: c.clock.Now().Add(ttl)})
}
