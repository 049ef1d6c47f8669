package remote_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// gatedLister lists through the real client, then holds the result until released: the
// listing has been served, but the caller has not seen it yet.
type gatedLister struct {
	client  *chatbot.Client
	served  chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

func (g *gatedLister) ListSegments(ctx context.Context) ([]chatbot.Segment, error) {
	g.calls.Add(1)
	segs, err := g.client.ListSegments(ctx)
	if g.served != nil {
		g.served <- struct{}{}
		<-g.release
	}
	return segs, err
}

// A listing that began before our own writes must not undo them when it lands: a segment we
// just created would look deleted (and be created twice), one we deleted would come back.
func TestListingInFlightKeepsOurWrites(t *testing.T) {
	sim, c := remote.SimulatedClient(t)
	ctx := context.Background()
	doomed := sim.Create("doomed")
	renamed := sim.Create("old name")
	l := &gatedLister{client: c, served: make(chan struct{}), release: make(chan struct{})}
	obs := remote.NewObservations(l, nil)

	done := make(chan error)
	go func() { _, err := obs.Refresh(ctx); done <- err }()
	<-l.served // the server has answered without any of the writes below

	created, err := c.CreateSegment(ctx, "fresh")
	if err != nil {
		t.Fatal(err)
	}
	id := created.ID
	obs.Created(created)
	if err := c.DeleteSegment(ctx, doomed); err != nil {
		t.Fatal(err)
	}
	obs.Deleted(doomed)
	if err := c.RenameSegment(ctx, renamed, "new name"); err != nil {
		t.Fatal(err)
	}
	obs.Renamed(renamed, "new name")

	close(l.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := obs.Lookup(id); !ok {
		t.Error("segment created during the listing is missing")
	}
	if _, ok := obs.Lookup(doomed); ok {
		t.Error("segment deleted during the listing came back")
	}
	if seg, _ := obs.Lookup(renamed); seg.Name != "new name" {
		t.Errorf("rename made during the listing was undone: %q", seg.Name)
	}

	// A listing begun after the writes contains them; the journal is then emptied.
	l.served = nil
	if _, err := obs.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if len(obs.Segments()) != 2 {
		t.Errorf("after a clean listing: %+v", obs.Segments())
	}
}

func TestConcurrentCallersShareOneListing(t *testing.T) {
	sim, c := remote.SimulatedClient(t)
	sim.Create("a")
	l := &gatedLister{client: c, served: make(chan struct{}, 1), release: make(chan struct{})}
	obs := remote.NewObservations(l, nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := obs.Ensure(context.Background(), time.Minute); err != nil {
				t.Error(err)
			}
		})
	}
	<-l.served // one listing is held open; without sharing, each caller would start its own
	close(l.release)
	wg.Wait()
	if n := l.calls.Load(); n > 2 {
		t.Errorf("20 concurrent callers made %d listings", n)
	}
}

func TestEnsureListsOnlyWhenStale(t *testing.T) {
	_, c := remote.SimulatedClient(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &gatedLister{client: c}
	obs := remote.NewObservations(l, func() time.Time { return now })
	ctx := context.Background()
	for range 5 {
		if _, err := obs.Ensure(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(59 * time.Second)
	_, _ = obs.Ensure(ctx, time.Minute)
	if l.calls.Load() != 1 {
		t.Fatalf("%d listings within the max age, want 1", l.calls.Load())
	}
	now = now.Add(time.Second)
	fetched, _ := obs.Ensure(ctx, time.Minute)
	if l.calls.Load() != 2 || !fetched.Equal(now) {
		t.Fatalf("stale view: %d listings, fetched %v", l.calls.Load(), fetched)
	}
}

func TestAccountsAreKeptApart(t *testing.T) {
	accounts := remote.NewAccounts(remote.AccountOptions{})
	a1, _ := accounts.For(remote.Credentials{BaseURL: "http://x", Token: "one"}, "ns")
	a2, _ := accounts.For(remote.Credentials{BaseURL: "http://x", Token: "two"}, "ns")
	again, _ := accounts.For(remote.Credentials{BaseURL: "http://x", Token: "one"}, "ns")
	if a1 == a2 || a1.Observations == a2.Observations || a1 != again {
		t.Fatal("accounts are shared between tokens, or not reused for the same token")
	}
	if a1.ID == a2.ID || len(a1.ID) != 12 {
		t.Fatalf("account IDs %q %q", a1.ID, a2.ID)
	}
}

// An account no Segment asks for any more (its token was rotated) is forgotten, with its
// client and listing; one in use is kept.
func TestOneAccountWhateverTheSpellingOfItsURL(t *testing.T) {
	accounts := remote.NewAccounts(remote.AccountOptions{})
	a, _ := accounts.For(remote.Credentials{BaseURL: "https://api.chatbot.com", Token: "t"}, "ns")
	for _, spelling := range []string{"https://api.chatbot.com/", "HTTPS://API.ChatBot.com", " https://api.chatbot.com// ", ""} {
		if b, _ := accounts.For(remote.Credentials{BaseURL: spelling, Token: "t"}, "ns"); b != a {
			t.Errorf("base URL %q made a second account", spelling)
		}
	}
	if b, _ := accounts.For(remote.Credentials{BaseURL: "https://api.chatbot.com/v2", Token: "t"}, "ns"); b == a {
		t.Error("a different path shared the account")
	}
	if n := len(accounts.All()); n != 2 {
		t.Errorf("%d accounts, want 2", n)
	}
}

func TestIdleAccountsAreForgotten(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var forgotten []string
	accounts := remote.NewAccounts(remote.AccountOptions{IdleTTL: 10 * time.Minute, Now: func() time.Time { return now },
		Forgotten: func(id string) { forgotten = append(forgotten, id) }})
	old := remote.Credentials{BaseURL: "http://x", Token: "old"}
	cur := remote.Credentials{BaseURL: "http://x", Token: "new"}
	first, _ := accounts.For(old, "ns")
	for range 3 {
		now = now.Add(5 * time.Minute)
		if _, err := accounts.For(cur, "ns"); err != nil {
			t.Fatal(err)
		}
	}
	if got := accounts.All(); len(got) != 1 || got[0].ID == first.ID {
		t.Fatalf("after 15 idle minutes the old account is still there: %d accounts", len(got))
	}
	if !slices.Equal(forgotten, []string{first.ID}) {
		t.Errorf("told of forgotten accounts %q, want only %q", forgotten, first.ID)
	}
	kept, _ := accounts.For(cur, "ns")
	now = now.Add(9 * time.Minute)
	if again, _ := accounts.For(cur, "ns"); again != kept {
		t.Fatal("an account in use was replaced")
	}
	if again, _ := accounts.For(old, "ns"); again == first {
		t.Fatal("a forgotten account came back with its old state")
	}
}

func TestDefaultCredentialsRereadTheTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &remote.DefaultCredentials{BaseURL: "http://x", TokenFile: file}
	if c, err := d.Get(); err != nil || c.Token != "first" {
		t.Fatalf("%v %v", c.Token, err)
	}
	if err := os.WriteFile(file, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(file, later, later)
	if c, err := d.Get(); err != nil || c.Token != "second" {
		t.Fatalf("after rotation: %v %v", c.Token, err)
	}
	if c, err := (&remote.DefaultCredentials{BaseURL: "http://x"}).Get(); err != remote.ErrNoCredentials || c.BaseURL != "http://x" {
		t.Fatalf("no token: %+v, %v", c, err)
	}
	// Without a usable token the base URL still comes: Secrets without apiURL need it.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if c, err := (&remote.DefaultCredentials{BaseURL: "http://x", TokenFile: file}).Get(); err == nil || c.BaseURL != "http://x" || c.Token != "" {
		t.Fatalf("missing token file: %+v, %v", c, err)
	}
}

// A create whose response was lost must be looked for in a listing that began after the
// call ended. Joining a listing already under way, begun before the create, would find
// nothing and make the caller create again.
func TestListedAfterNeverJoinsAListingBegunEarlier(t *testing.T) {
	sim, c := remote.SimulatedClient(t)
	ctx := context.Background()
	l := &gatedLister{client: c, served: make(chan struct{}), release: make(chan struct{})}
	obs := remote.NewObservations(l, nil)

	early := make(chan error)
	go func() { _, err := obs.Refresh(ctx); early <- err }()
	<-l.served // a listing served before the create, not yet delivered

	made := sim.Create("lost response") // a create whose response never arrived
	ended := time.Now()

	found := make(chan bool)
	go func() {
		if _, err := obs.ListedAfter(ctx, ended); err != nil {
			t.Error(err)
		}
		_, ok := obs.Lookup(made)
		found <- ok
	}()
	l.release <- struct{}{} // the early listing lands, without the new segment
	if err := <-early; err != nil {
		t.Fatal(err)
	}
	<-l.served // ListedAfter began a second listing
	l.release <- struct{}{}
	if !<-found {
		t.Fatal("ListedAfter returned a view without the segment made after the listing it joined began")
	}
	if got := l.calls.Load(); got != 2 {
		t.Fatalf("listings: got %d, want 2", got)
	}
}

// A time still to come must not make ListedAfter list again and again until it comes.
func TestListedAfterAFutureTimeListsOnce(t *testing.T) {
	_, c := remote.SimulatedClient(t)
	l := &gatedLister{client: c}
	obs := remote.NewObservations(l, nil)
	if _, err := obs.ListedAfter(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := l.calls.Load(); got != 1 {
		t.Fatalf("listings for a time an hour ahead: %d, want 1", got)
	}
}

// tooLargeLister answers every listing as over the client's cap.
type tooLargeLister struct{ calls atomic.Int32 }

func (l *tooLargeLister) ListSegments(context.Context) ([]chatbot.Segment, error) {
	l.calls.Add(1)
	return nil, &chatbot.APIError{Op: chatbot.OpList, StatusCode: 200, TooLarge: true, Message: "listing larger than 16 MiB: refused"}
}

// A listing refused for its size is not downloaded again by every Segment that asks: the
// refusal stands for as long as a listing would have.
func TestAListingTooLargeIsAskedForOncePerInterval(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := &tooLargeLister{}
	o := remote.NewObservations(l, func() time.Time { return now })
	for range 10 {
		if _, err := o.Ensure(context.Background(), time.Minute); err == nil {
			t.Fatal("a listing over the cap was taken")
		}
	}
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("%d listings for 10 Segments within the interval, want 1", n)
	}
	now = now.Add(time.Minute)
	_, _ = o.Ensure(context.Background(), time.Minute)
	if n := l.calls.Load(); n != 2 {
		t.Fatalf("%d listings after the interval, want 2", n)
	}
}

// An account with a client-side rate limit gives its Share the limiter's queue: once calls
// wait for their turns, its Segments' reconciles (but a namespace's first) are turned away
// instead of joining them.
func TestAnAccountsShareSeesItsRateLimitQueue(t *testing.T) {
	accounts := remote.NewAccounts(remote.AccountOptions{QPS: 0.01, Burst: 1, Share: 4})
	sim, err := simulator.New(simulator.Options{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	acct, err := accounts.For(remote.Credentials{BaseURL: srv.URL, Token: "t"}, "ns")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := acct.Share.Take("first", "team") // its namespace's first: admitted whatever the queue
	if first == nil {
		t.Fatal("turned away with no queue")
	}
	defer first.Leave()
	if _, err := acct.Client.ListSegments(t.Context()); err != nil { // the burst's token
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var waiting sync.WaitGroup
	for range 2 { // each waits 100s for its turn
		waiting.Go(func() { _, _ = acct.Client.ListSegments(ctx) })
	}
	defer waiting.Wait()
	defer cancel()
	for acct.Client.Backlog() < 200*time.Second {
		time.Sleep(time.Millisecond)
	}
	turn, wait := acct.Share.Take("second", "team")
	if turn != nil {
		t.Fatal("admitted behind 300s of queued calls")
	}
	if wait < 250*time.Second {
		t.Fatalf("told to come back in %s, before the queue can have gone down", wait)
	}
}

// A tenant may use PerTenant accounts within IdleTTL: one more is refused, however many
// times its Secret's token is rewritten, until one of its accounts goes unused for IdleTTL;
// an account another tenant uses (the manager's own token) counts for each, once.
func TestAccountsPerTenantAreBounded(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	accounts := remote.NewAccounts(remote.AccountOptions{PerTenant: 2, IdleTTL: 10 * time.Minute,
		Now: func() time.Time { return now }})
	token := func(s string) remote.Credentials { return remote.Credentials{BaseURL: "http://x", Token: s} }
	shared, err := accounts.For(token("manager"), "other")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := accounts.For(token("manager"), "tenant"); err != nil || again != shared {
		t.Fatalf("the shared account: %v", err)
	}
	if _, err := accounts.For(token("rotated-1"), "tenant"); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		_, err := accounts.For(token(fmt.Sprintf("rotated-%d", i+2)), "tenant")
		if _, ok := errors.AsType[*remote.TooManyAccountsError](err); !ok {
			t.Fatalf("a third account for the tenant: %v", err)
		}
		if i == 0 && !strings.Contains(err.Error(), `namespace "tenant" already uses 2 ChatBot accounts`) {
			t.Errorf("message: %s", err)
		}
	}
	if n := len(accounts.All()); n != 2 {
		t.Fatalf("%d accounts kept after 100 refused rotations, want 2", n)
	}
	if _, err := accounts.For(token("rotated-1"), "tenant"); err != nil {
		t.Fatalf("an account in use refused: %v", err)
	}
	if _, err := accounts.For(token("third"), "another"); err != nil {
		t.Fatalf("another tenant refused for this one's accounts: %v", err)
	}
	// An account the tenant holds a segment in: never refused, but counted, so that no
	// other account is admitted in its place while it is used.
	if _, err := accounts.Held(token("owned"), "tenant"); err != nil {
		t.Fatalf("an owned segment's account refused: %v", err)
	}
	if _, err := accounts.For(token("rotated-1"), "tenant"); err != nil {
		t.Fatalf("an account in use refused: %v", err)
	}
	now = now.Add(6 * time.Minute) // within IdleTTL of the last use of each
	_, _ = accounts.Held(token("owned"), "tenant")
	_, _ = accounts.For(token("manager"), "tenant")
	now = now.Add(6 * time.Minute) // rotated-1 unused for IdleTTL: manager and owned left
	_, _ = accounts.Held(token("owned"), "tenant")
	_, _ = accounts.For(token("manager"), "tenant")
	var tooMany *remote.TooManyAccountsError
	if _, err := accounts.For(token("yet-another"), "tenant"); !errors.As(err, &tooMany) {
		t.Fatalf("a third account admitted beside a held one: %v", err)
	}
	now = now.Add(6 * time.Minute)
	_, _ = accounts.Held(token("owned"), "tenant") // held and used: it keeps its place
	_, _ = accounts.For(token("manager"), "other")

	if _, err := accounts.For(token("yet-another"), "tenant"); !errors.As(err, &tooMany) {
		t.Fatalf("a held account stopped counting while used: %v", err)
	}

	// Twelve minutes on, the tenant uses only the held account: the shared one stops
	// counting for it, though "other" keeps it alive, and a new one is allowed.
	now = now.Add(6 * time.Minute)
	_, _ = accounts.Held(token("owned"), "tenant")
	_, _ = accounts.For(token("manager"), "other")
	now = now.Add(6 * time.Minute)
	if _, err := accounts.For(token("rotated-99"), "tenant"); err != nil {
		t.Fatalf("refused after an account went unused for IdleTTL: %v", err)
	}
}

// The accounts a tenant's Segments hold segments in, as their status records, count toward
// its bound whatever their last use: a Segment suspended, or not reconciled since a
// restart, keeps its account's place.
func TestHeldAccountsCountUnused(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	token := func(s string) remote.Credentials { return remote.Credentials{BaseURL: "http://x", Token: s} }
	held := []string{token("suspended").AccountID()}
	accounts := remote.NewAccounts(remote.AccountOptions{PerTenant: 2, IdleTTL: 10 * time.Minute,
		Now: func() time.Time { return now }, Held: func(tenant string) []string {
			if tenant == "tenant" {
				return held
			}
			return nil
		}})
	if _, err := accounts.For(token("one"), "tenant"); err != nil {
		t.Fatal(err)
	}
	var tooMany *remote.TooManyAccountsError
	if _, err := accounts.For(token("two"), "tenant"); !errors.As(err, &tooMany) {
		t.Fatalf("a second account beside one used and one held: %v", err)
	}
	if _, err := accounts.For(token("two"), "another"); err != nil {
		t.Fatalf("another tenant counted this one's held account: %v", err)
	}
	if _, err := accounts.Held(token("suspended"), "tenant"); err != nil {
		t.Fatalf("the held account refused when its Segment comes back: %v", err)
	}
	now = now.Add(time.Hour) // nothing used since: only the held account counts
	if _, err := accounts.For(token("two"), "tenant"); err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.For(token("three"), "tenant"); !errors.As(err, &tooMany) {
		t.Fatalf("a third beside one used and one held: %v", err)
	}
	// The accounts it used, gone stale: the held ones still count.
	held = []string{token("suspended").AccountID(), token("also-held").AccountID()}
	now = now.Add(time.Hour)
	if _, err := accounts.For(token("fresh"), "tenant"); !errors.As(err, &tooMany) {
		t.Fatalf("admitted beside two held accounts once the used ones went stale: %v", err)
	}
	held = nil // the Segments deleted: their places are free, once what was listed is ten seconds old
	if _, err := accounts.For(token("three"), "tenant"); !errors.As(err, &tooMany) {
		t.Fatalf("the held accounts listed again at once: %v", err)
	}
	now = now.Add(10 * time.Second)
	if _, err := accounts.For(token("three"), "tenant"); err != nil {
		t.Fatal(err)
	}
}

// What AccountOptions.Held lists is asked for only where it decides, never with the lock
// every tenant's lookups share held, and at most once per ten seconds per tenant.
func TestHeldAccountsAreListedOnlyWhereTheyDecide(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	token := func(s string) remote.Credentials { return remote.Credentials{BaseURL: "http://x", Token: s} }
	var accounts *remote.Accounts
	lists := 0
	accounts = remote.NewAccounts(remote.AccountOptions{PerTenant: 2, IdleTTL: 10 * time.Minute,
		Now: func() time.Time { return now }, Held: func(tenant string) []string {
			if tenant != "tenant" {
				return nil
			}
			lists++
			done := make(chan struct{})
			go func() { // another tenant's lookup goes on meanwhile
				defer close(done)
				if _, err := accounts.For(token("other"), "another"); err != nil {
					t.Error(err)
				}
			}()
			<-done
			return nil
		}})
	for _, step := range []struct {
		token string
		lists int
	}{
		{"one", 1},   // new, and one place left: listed
		{"one", 1},   // used: not listed
		{"two", 1},   // new: listed within ten seconds, not again
		{"three", 1}, // two used: refused without listing
	} {
		_, _ = accounts.For(token(step.token), "tenant")
		if lists != step.lists {
			t.Fatalf("after %q: listed %d times, want %d", step.token, lists, step.lists)
		}
	}
}

// A call that ends after its account was forgotten reports nothing: the series dropped with
// the account do not come back.
func TestAForgottenAccountReportsNoCall(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	series := map[string]int{}
	release := make(chan struct{})
	var arrived atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived.Add(1)
		<-release
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	accounts := remote.NewAccounts(remote.AccountOptions{IdleTTL: time.Minute, Now: func() time.Time { return now },
		Observer:  func(id, _ string, _ int, _ time.Duration) { mu.Lock(); series[id]++; mu.Unlock() },
		Forgotten: func(id string) { mu.Lock(); delete(series, id); mu.Unlock() }})
	acct, err := accounts.For(remote.Credentials{BaseURL: srv.URL, Token: "old"}, "ns")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _, _ = acct.Client.ListSegments(context.Background()) }()
	for arrived.Load() == 0 { // the call is under way
		time.Sleep(time.Millisecond)
	}
	now = now.Add(2 * time.Minute)
	if _, err := accounts.For(remote.Credentials{BaseURL: srv.URL, Token: "new"}, "ns"); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if n, ok := series[acct.ID]; ok {
		t.Fatalf("the forgotten account's series came back with %d calls", n)
	}
}

// A users count our adds raised says only what we added; the next listing's is the API's.
func TestCountedUntilOurAddsRaiseIt(t *testing.T) {
	sim, c := remote.SimulatedClient(t)
	ctx := context.Background()
	id := sim.Create("s", "u1", "u2")
	obs := remote.NewObservations(&gatedLister{client: c}, nil)
	if _, err := obs.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !obs.Counted(id) {
		t.Fatal("a listed count is not the API's")
	}
	obs.MembersAdded(id, 2) // no higher than the listing's: the count stays the API's
	if !obs.Counted(id) {
		t.Fatal("a count our adds did not change is no longer the API's")
	}
	obs.MembersAdded(id, 5)
	if seg, _ := obs.Lookup(id); obs.Counted(id) || seg.Users != 5 {
		t.Fatalf("raised to %d, counted %v", seg.Users, obs.Counted(id))
	}
	if _, err := obs.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if seg, _ := obs.Lookup(id); !obs.Counted(id) || seg.Users != 2 {
		t.Fatalf("after a listing: %d, counted %v", seg.Users, obs.Counted(id))
	}
}

// A request is answered by a listing begun after it was first seen, never an earlier one
// (the drift check's, or another request's); requests force at most one listing per
// spacing, and one seen after a forced listing began is told to wait for the next.
func TestRequestsForceOneListingPerSpacing(t *testing.T) {
	sim, c := remote.SimulatedClient(t)
	ctx := context.Background()
	l := &gatedLister{client: c}
	obs := remote.NewObservations(l, nil)
	const spacing = 300 * time.Millisecond
	if _, err := obs.Ensure(ctx, time.Minute); err != nil { // the drift check's listing
		t.Fatal(err)
	}
	made := sim.Create("made after the drift check listed")
	if _, err := obs.ListedOnRequest(ctx, "a", "v1", spacing, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok := obs.Lookup(made); !ok || l.calls.Load() != 2 {
		t.Fatalf("after a request: %d listings, segment made before it found: %v; want 2 listings, found", l.calls.Load(), ok)
	}

	// A change just before a second request, within the spacing of the first: the second
	// is told to wait, and once back, sees the change in a listing of its own.
	later := sim.Create("made between two requests")
	start := time.Now()
	if _, err := obs.ListedOnRequest(ctx, "b", "v1", spacing, time.Minute); !errors.As(err, new(*remote.RequestWait)) {
		t.Fatalf("a second request within the spacing: %v, want a RequestWait", err)
	}
	if err := onRequest(ctx, obs, "b", spacing); err != nil {
		t.Fatal(err)
	}
	if _, ok := obs.Lookup(later); !ok {
		t.Fatal("a request answered by a listing begun before it: the segment made just before it is missing")
	}
	if got, waited := l.calls.Load(), time.Since(start); got != 3 || waited < spacing/2 {
		t.Fatalf("the second request: %d listings in all (want 3), after %v (want about the spacing)", got, waited)
	}
}

// Requests seen while a forced listing is under way are told to wait for the next, and
// share it: 20 requests make 2 listings.
func TestRequestsJoinTheListingUnderWay(t *testing.T) {
	_, c := remote.SimulatedClient(t)
	ctx := context.Background()
	l := &gatedLister{client: c, served: make(chan struct{}, 1), release: make(chan struct{})}
	obs := remote.NewObservations(l, nil)
	const spacing = 200 * time.Millisecond
	first := make(chan error)
	go func() { first <- onRequest(ctx, obs, "first", spacing) }()
	<-l.served // the forced listing is held open
	var wg sync.WaitGroup
	for i := range 19 {
		wg.Go(func() {
			if err := onRequest(ctx, obs, fmt.Sprint("later-", i), spacing); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // the 19 are waiting
	close(l.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := l.calls.Load(); got != 2 {
		t.Fatalf("20 requests, 19 of them while the first one's listing was under way: %d listings, want 2", got)
	}
}

// A forced listing that fails answers the requests seen before it with its error, and the
// next is forced no sooner than the spacing after it; an account refused for its size is
// not listed again on request within maxAge.
func TestFailedRequestListingsAreSpaced(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int64 // listings for 50 requests
	}{
		{"the API fails", &chatbot.APIError{Op: chatbot.OpList, StatusCode: 503}, 1},
		{"the account is too large", &chatbot.APIError{Op: chatbot.OpList, StatusCode: 200, TooLarge: true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &failingLister{err: tc.err}
			obs := remote.NewObservations(l, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			var wg sync.WaitGroup
			for i := range 50 {
				wg.Go(func() { _, _ = obs.ListedOnRequest(ctx, fmt.Sprint("s", i), "v1", time.Second, time.Minute) })
			}
			wg.Wait()
			if got := l.calls.Load(); got != tc.want {
				t.Fatalf("50 requests on a failing account within the spacing: %d listings, want %d", got, tc.want)
			}
		})
	}
}

// onRequest is ListedOnRequest as the controller uses it: a request told to wait comes back
// after the wait.
func onRequest(ctx context.Context, obs *remote.Observations, key string, spacing time.Duration) error {
	for {
		_, err := obs.ListedOnRequest(ctx, key, "v1", spacing, time.Minute)
		wait := (*remote.RequestWait)(nil)
		if !errors.As(err, &wait) {
			return err
		}
		time.Sleep(wait.After)
	}
}

// failingLister fails every listing with err, and counts them.
type failingLister struct {
	err   error
	calls atomic.Int64
}

func (f *failingLister) ListSegments(context.Context) ([]chatbot.Segment, error) {
	f.calls.Add(1)
	return nil, f.err
}
