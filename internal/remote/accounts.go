package remote

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// Credentials identify one ChatBot account: where its API is and the Developer access token.
type Credentials struct {
	BaseURL string
	Token   string
}

// key identifies the account without holding the token. Spellings of one base URL that
// differ only in case of scheme and host, a trailing slash or "" for the default count as
// one account: one client, one rate limit, one listing.
func (c Credentials) key() string {
	sum := sha256.Sum256([]byte(normalizeBaseURL(c.BaseURL) + "\x00" + c.Token))
	return hex.EncodeToString(sum[:])
}

// AccountID is the ID of the account c names (Account.ID).
func (c Credentials) AccountID() string { return idOf(c.key()) }

// idOf returns the ID of the account of key.
func idOf(key string) string { return key[:12] }

// normalizeBaseURL returns the canonical spelling of an API base URL; one that does not
// parse is returned as given (the client refuses it).
func normalizeBaseURL(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		s = chatbot.DefaultBaseURL
	}
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	return u.String()
}

// Account is one ChatBot account as the operator sees it.
type Account struct {
	// ID names the account in logs and metrics without revealing the token: the first 12
	// hex digits of a SHA-256 of base URL and token.
	ID           string
	Client       *chatbot.Client
	Observations *Observations
	// Members adds members, merging identical member sets into shared calls.
	Members *MemberAdder

	lastUsed time.Time // guarded by Accounts.mu

	// observing is held (read) while a call is reported to the Observer, and forgotten is
	// set under it (write) before the account's series are dropped: a call that ends after
	// the account is forgotten brings no series back.
	observing sync.RWMutex
	forgotten bool

	// Share bounds the reconciles of the account's Segments under way at once, and turns
	// them away while the client-side rate limit has a queue (see MaxQueueWait).
	Share *Share
}

// AccountOptions configure every account's client.
type AccountOptions struct {
	// QPS is the most API calls per second the operator makes to one account (0: no limit);
	// Burst how many may go at once.
	QPS   float64
	Burst int
	// Share is the most reconciles of one account's Segments under way at once (0: no
	// bound): the rest of the workers stay free for other accounts.
	Share int
	// Observer is told of every API call, for metrics; it receives the account ID.
	Observer func(account, op string, status int, elapsed time.Duration)
	// Options are passed to every client.
	Options []chatbot.Option
	// IdleTTL is how long an account may go unused before it is forgotten, with its client
	// and listing (0: never). Every Segment asks for its account at least once per drift
	// interval, so an account unused for several intervals has no Segments left: its token
	// was rotated or its Secret deleted.
	IdleTTL time.Duration
	// Forgotten is told the ID of each account forgotten for being idle, so that what is
	// kept per account elsewhere (metric series) goes with it.
	Forgotten func(id string)
	// PerTenant is the most accounts one tenant (a namespace) may use within IdleTTL (0: no
	// bound; with IdleTTL 0, for as long as the process runs). Each pair of token and base
	// URL is an account, with a client, a listing and metric series of its own, kept for
	// IdleTTL after its last use: without a bound, a tenant rewriting its Secret's token
	// could make the manager keep one per write.
	PerTenant int
	// Held returns the IDs of the accounts a tenant's Segments have a segment (or a create
	// pending) in, as their status records. They count toward PerTenant whatever their
	// last use: a Segment suspended, or not reconciled since a restart, keeps its
	// account's place, which no other account may take meanwhile. Nil: none. It is asked
	// only for an account new to the tenant that the accounts it used do not refuse
	// already, with no lock held, and its answer kept for ten seconds.
	Held func(tenant string) []string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Accounts hands out one Account per set of credentials, so that clients, rate limits and
// observations are shared by every Segment of an account and never mixed between accounts.
type Accounts struct {
	opts    AccountOptions
	mu      sync.Mutex
	m       map[string]*Account
	tenants map[string]map[string]time.Time // tenant, account key: when the tenant last used it

	heldMu sync.Mutex
	held   map[string]heldAccounts // by tenant: what AccountOptions.Held said, for heldFor

	// wake is told the callers to ask again when a place of an account's Share frees
	// (WakeWith); under mu.
	wake func(caller string)
}

// WakeWith tells wake, from then on, the callers of an account's Share to ask again at once
// when a place frees (see NewShare). Call it before the first account is made.
func (a *Accounts) WakeWith(wake func(caller string)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.wake = wake
}

// heldFor is how long what AccountOptions.Held says of a tenant is taken as true: it lists
// the tenant's Segments, and a tenant may have many, each of whose reconciles may ask.
const heldFor = 10 * time.Second

type heldAccounts struct {
	ids []string
	at  time.Time
}

// NewAccounts returns an empty registry.
func NewAccounts(opts AccountOptions) *Accounts {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Accounts{opts: opts, m: map[string]*Account{}, tenants: map[string]map[string]time.Time{},
		held: map[string]heldAccounts{}}
}

// For returns the account for c, used by tenant (a namespace), creating it on first use,
// and forgets the accounts idle for longer than IdleTTL. It refuses (*TooManyAccountsError)
// an account that would be the tenant's PerTenant+1st. With tenant "" it neither refuses
// nor counts.
func (a *Accounts) For(c Credentials, tenant string) (*Account, error) {
	return a.account(c, tenant, false)
}

// Held returns the account for c as For does, for a tenant that already has a segment
// there (or a create pending) which it must reach to delete, however many accounts it uses
// meanwhile: never refused, but counted as For counts it, for as long as it is used, so
// that no other account is admitted in its place.
func (a *Accounts) Held(c Credentials, tenant string) (*Account, error) {
	return a.account(c, tenant, true)
}

func (a *Accounts) account(c Credentials, tenant string, held bool) (*Account, error) {
	key := c.key()
	now := a.opts.Now()
	var heldIDs []string // listed only where they decide, and with no lock held
	if tenant != "" && !held && a.mayRefuse(tenant, key, now) {
		heldIDs = a.heldBy(tenant, now)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ttl := a.opts.IdleTTL; ttl > 0 {
		forgotten := false
		for k, acct := range a.m {
			if k != key && now.Sub(acct.lastUsed) > ttl {
				delete(a.m, k) // whoever still holds it may finish with it
				a.forget(acct)
				forgotten = true
			}
		}
		if forgotten {
			for t := range a.tenants {
				a.prune(t, now)
			}
		}
	}
	if tenant != "" {
		if err := a.admit(tenant, key, now, held, heldIDs); err != nil {
			return nil, err
		}
	}
	if acct, ok := a.m[key]; ok {
		acct.lastUsed = now
		return acct, nil
	}
	id := c.AccountID()
	opts := append([]chatbot.Option(nil), a.opts.Options...)
	if a.opts.QPS > 0 {
		opts = append(opts, chatbot.WithLimiter(rate.NewLimiter(rate.Limit(a.opts.QPS), max(1, a.opts.Burst))))
	}
	var acct *Account // set below, before any call
	if obs := a.opts.Observer; obs != nil {
		opts = append(opts, chatbot.WithObserver(func(op string, status int, d time.Duration) {
			acct.observing.RLock()
			defer acct.observing.RUnlock()
			if !acct.forgotten {
				obs(id, op, status, d)
			}
		}))
	}
	client, err := chatbot.New(normalizeBaseURL(c.BaseURL), c.Token, opts...)
	if err != nil {
		return nil, err
	}
	var queue func(held int) time.Duration
	if a.opts.QPS > 0 {
		// The calls waiting for the limiter, and one to come for each reconcile under way,
		// which the limiter does not show yet.
		turn := time.Duration(float64(time.Second) / a.opts.QPS)
		queue = func(held int) time.Duration { return client.Backlog() + time.Duration(held)*turn }
	}
	acct = &Account{ID: id, Client: client, Observations: NewObservations(client, nil), Members: NewMemberAdder(client), lastUsed: now,
		Share: NewShare(a.opts.Share, queue, a.wake)}
	a.m[key] = acct
	return acct, nil
}

// forget marks acct forgotten, so that no call of it is reported any more, and drops what
// is kept of it elsewhere (Forgotten). Under a.mu: an account of the same key cannot be
// made meanwhile, whose first series Forgotten would drop.
func (a *Accounts) forget(acct *Account) {
	acct.observing.Lock()
	acct.forgotten = true
	acct.observing.Unlock()
	if a.opts.Forgotten != nil {
		a.opts.Forgotten(acct.ID)
	}
}

// TooManyAccountsError refuses a tenant one account more than AccountOptions.PerTenant.
type TooManyAccountsError struct {
	Tenant string
	Most   int
	Within time.Duration // 0: for as long as the manager runs
}

func (e *TooManyAccountsError) Error() string {
	within := ""
	if e.Within > 0 {
		within = fmt.Sprintf("; an account stops counting %s after the namespace last used it, unless one of its Segments "+
			"has a segment there", e.Within)
	}
	return fmt.Sprintf("namespace %q already uses %d ChatBot accounts (each pair of token and API URL is one), "+
		"the most allowed (--max-accounts-per-namespace)%s", e.Tenant, e.Most, within)
}

// mayRefuse says whether admit may refuse tenant the account of key for the accounts its
// Segments hold: it is a new one, and those the tenant used do not refuse it already.
func (a *Accounts) mayRefuse(tenant, key string, now time.Time) bool {
	if a.opts.PerTenant <= 0 || a.opts.Held == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	used := a.prune(tenant, now) // as admit will see them
	_, in := used[key]
	return !in && len(used) < a.opts.PerTenant
}

// heldBy returns the IDs of the accounts tenant's Segments hold (AccountOptions.Held), as
// listed within heldFor.
func (a *Accounts) heldBy(tenant string, now time.Time) []string {
	a.heldMu.Lock()
	h, ok := a.held[tenant]
	a.heldMu.Unlock()
	if ok && now.Sub(h.at) < heldFor {
		return h.ids
	}
	ids := a.opts.Held(tenant)
	a.heldMu.Lock()
	defer a.heldMu.Unlock()
	for t, h := range a.held {
		if now.Sub(h.at) >= heldFor {
			delete(a.held, t)
		}
	}
	a.held[tenant] = heldAccounts{ids: ids, at: now}
	return ids
}

// admit records that tenant uses the account of key, or refuses it as one too many (one
// held is never refused); heldIDs are the accounts its Segments hold, where listed.
func (a *Accounts) admit(tenant, key string, now time.Time, held bool, heldIDs []string) error {
	if a.opts.PerTenant <= 0 {
		return nil
	}
	used := a.prune(tenant, now)
	if _, ok := used[key]; !ok && !held {
		others := sets.New[string]()
		for k := range used {
			others.Insert(idOf(k))
		}
		others.Insert(heldIDs...)
		if others.Delete(idOf(key)).Len() >= a.opts.PerTenant {
			return &TooManyAccountsError{Tenant: tenant, Most: a.opts.PerTenant, Within: a.opts.IdleTTL}
		}
	}
	if used == nil {
		used = map[string]time.Time{}
		a.tenants[tenant] = used
	}
	used[key] = now
	return nil
}

// prune drops from the accounts tenant used those forgotten since, or not used by it for
// IdleTTL, and returns the rest.
func (a *Accounts) prune(tenant string, now time.Time) map[string]time.Time {
	used := a.tenants[tenant]
	for k, last := range used {
		if _, alive := a.m[k]; !alive || (a.opts.IdleTTL > 0 && now.Sub(last) > a.opts.IdleTTL) {
			delete(used, k)
		}
	}
	if len(used) == 0 {
		delete(a.tenants, tenant)
		return nil
	}
	return used
}

// Drop forgets caller in every account's Share (see Share.Drop): a Segment deleted no
// longer says which account it used.
func (a *Accounts) Drop(caller string) {
	for _, acct := range a.All() {
		acct.Share.Drop(caller)
	}
}

// All returns every account in use.
func (a *Accounts) All() []*Account {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*Account, 0, len(a.m))
	for _, acct := range a.m {
		out = append(out, acct)
	}
	return out
}

// DefaultCredentials are the manager's own credentials, used by Segments that name none:
// a base URL and a token given directly (from $CHATBOT_API_TOKEN) or read from a file. A
// file is re-read when it changes, so a rotated Secret mounted as a volume takes effect
// without a restart.
type DefaultCredentials struct {
	BaseURL   string
	Token     string
	TokenFile string

	mu      sync.Mutex
	modTime time.Time
	cached  string
}

// ErrNoCredentials means the manager was given no token.
var ErrNoCredentials = errors.New("no ChatBot API token: set $CHATBOT_API_TOKEN or --chatbot-api-token-file")

// Get returns the credentials now in force. Without a usable token it returns an error
// (ErrNoCredentials when none was given), and still the base URL.
func (d *DefaultCredentials) Get() (Credentials, error) {
	if d.TokenFile == "" {
		if d.Token == "" {
			return Credentials{BaseURL: d.BaseURL}, ErrNoCredentials
		}
		return Credentials{BaseURL: d.BaseURL, Token: d.Token}, nil
	}
	fi, err := os.Stat(d.TokenFile)
	if err != nil {
		return Credentials{BaseURL: d.BaseURL}, fmt.Errorf("token file: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cached == "" || !fi.ModTime().Equal(d.modTime) {
		b, err := os.ReadFile(d.TokenFile)
		if err != nil {
			return Credentials{BaseURL: d.BaseURL}, fmt.Errorf("token file: %w", err)
		}
		token := strings.TrimSpace(string(b))
		if token == "" {
			return Credentials{BaseURL: d.BaseURL}, fmt.Errorf("token file %s is empty", d.TokenFile)
		}
		d.cached, d.modTime = token, fi.ModTime()
	}
	return Credentials{BaseURL: d.BaseURL, Token: d.cached}, nil
}
