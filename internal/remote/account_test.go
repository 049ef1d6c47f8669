package remote_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/remote/remotetest"
)

// maxAge is long enough that no listing in these tests goes stale on its own: every
// listing they count is one the Account chose to make.
const maxAge = time.Hour

// listed primes the account's shared listing, and zeroes the simulator's counters so that
// a test counts only the calls made after it.
func listed(t *testing.T, sim *simulator.Server, acct *remote.Account) {
	t.Helper()
	if err := acct.ListAfter(context.Background(), time.Time{}, maxAge); err != nil {
		t.Fatal(err)
	}
	sim.ResetCounts()
}

func lists(sim *simulator.Server) int64 { return sim.Counts().Requests[simulator.EndpointList] }

func TestAccountObserve(t *testing.T) {
	const (
		noConfirm         = iota // confirmAfter zero
		confirmBeforeList        // a time the listing began after
		confirmAfterMade         // just after the segment was made
	)
	tests := []struct {
		name string
		// madeAfterListing: the segment is made out of band after the account was listed,
		// so that the listing does not show it.
		madeAfterListing bool
		lookForOther     bool // look for an ID the account has never had
		confirm          int
		wantFound        bool
		wantLists        int64
	}{
		{name: "in the listing", wantFound: true},
		{name: "in the listing, confirm asked", confirm: confirmAfterMade, wantFound: true},
		{name: "made after the listing, no confirm: the listing's answer", madeAfterListing: true},
		{name: "made after the listing, which began after confirmAfter", madeAfterListing: true, confirm: confirmBeforeList},
		{name: "made after the listing, confirmed in a fresh one", madeAfterListing: true, confirm: confirmAfterMade,
			wantFound: true, wantLists: 1},
		{name: "never made, confirmed in a fresh one", lookForOther: true, confirm: confirmAfterMade, wantLists: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, acct := remotetest.Account(t, "ns")
			ctx := context.Background()
			beforeList := time.Now().Add(-time.Second)
			var id string
			if !tt.madeAfterListing {
				id = sim.Create("seg")
			}
			listed(t, sim, acct)
			if tt.madeAfterListing {
				id = sim.Create("seg")
			}
			if tt.lookForOther {
				id = "never-made"
			}
			var confirmAfter time.Time
			switch tt.confirm {
			case confirmBeforeList:
				confirmAfter = beforeList
			case confirmAfterMade:
				confirmAfter = time.Now()
			}

			seg, found, err := acct.Observe(ctx, id, maxAge, confirmAfter)
			if err != nil {
				t.Fatal(err)
			}
			if found != tt.wantFound {
				t.Errorf("found = %v, want %v", found, tt.wantFound)
			}
			if found && (seg.ID != id || seg.Name != "seg") {
				t.Errorf("observed %+v, want segment %s named seg", seg, id)
			}
			if got := lists(sim); got != tt.wantLists {
				t.Errorf("%d listings, want %d", got, tt.wantLists)
			}
		})
	}
}

// A listing that fails is an error that says so: the client's own, which does already, or
// one that says the listing is what failed.
func TestAccountObserveListingFails(t *testing.T) {
	tests := []struct {
		name string
		// fail makes the listing fail, and returns the context to observe with.
		fail       func(sim *simulator.Server) context.Context
		wantStatus int // the client's APIError; 0: not the client's error
		wantCause  error
	}{
		{name: "the API refuses the token", wantStatus: http.StatusUnauthorized, fail: func(sim *simulator.Server) context.Context {
			sim.SetToken("rotated")
			return context.Background()
		}},
		{name: "the caller gives up waiting", wantCause: context.Canceled, fail: func(sim *simulator.Server) context.Context {
			sim.SetLatency(200 * time.Millisecond)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, acct := remotetest.Account(t, "ns")
			_, _, err := acct.Observe(tt.fail(sim), "any", maxAge, time.Time{})
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantStatus != 0 {
				if apiErr, ok := chatbot.AsAPIError(err); !ok || apiErr.StatusCode != tt.wantStatus || err != error(apiErr) {
					t.Errorf("error %v, want the client's %d as it is", err, tt.wantStatus)
				}
				return
			}
			if !errors.Is(err, tt.wantCause) || !strings.HasPrefix(err.Error(), "list segments: ") {
				t.Errorf("error %q, want %v, saying the listing failed", err, tt.wantCause)
			}
		})
	}
}

// A segment we created is in the shared listing at once: a Segment reconciled next finds
// it without another listing, which could not be trusted to show it yet anyway.
func TestAccountCreateRecordsInObservations(t *testing.T) {
	sim, acct := remotetest.Account(t, "ns")
	listed(t, sim, acct)
	created, err := acct.Create(context.Background(), "fresh")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sim.Segment(created.ID); !ok {
		t.Fatalf("segment %s is not in the simulator", created.ID)
	}
	if seg, ok := acct.Lookup(created.ID); !ok || seg.Name != "fresh" {
		t.Errorf("Lookup = %+v, %v; want the created segment", seg, ok)
	}
	if segs := acct.Segments(); len(segs) != 1 || segs[0].ID != created.ID {
		t.Errorf("Segments = %+v, want the created segment alone", segs)
	}
	if _, found, err := acct.Observe(context.Background(), created.ID, maxAge, time.Now()); err != nil || !found {
		t.Errorf("Observe = %v, %v; want found", found, err)
	}
	if got := lists(sim); got != 0 {
		t.Errorf("%d listings, want none", got)
	}
}

// A Retry-After pause holds creates back before their intent is recorded, and an error
// that says the create made nothing.
func TestAccountCheckCreate(t *testing.T) {
	sim, acct := remotetest.Account(t, "ns")
	if err := acct.CheckCreate(); err != nil {
		t.Fatalf("fresh account: %v", err)
	}
	if err := sim.SetFaults(simulator.Faults{FailNext: 1, ErrorCode: http.StatusTooManyRequests,
		RetryAfter: simulator.Duration(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := acct.Observe(context.Background(), "any", maxAge, time.Time{}); err == nil {
		t.Fatal("listing answered 429: no error")
	}
	err := acct.CheckCreate()
	if apiErr, ok := chatbot.AsAPIError(err); !ok || !apiErr.NoEffect() {
		t.Errorf("CheckCreate after a Retry-After = %v, want an error with no effect", err)
	}
}

func TestAccountRename(t *testing.T) {
	tests := []struct {
		name         string
		goneOutside  bool // deleted out of band after the listing
		wantNotFound bool
	}{
		{name: "renamed"},
		{name: "gone: recorded deleted", goneOutside: true, wantNotFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, acct := remotetest.Account(t, "ns")
			id := sim.Create("old")
			listed(t, sim, acct)
			if tt.goneOutside {
				sim.Delete(id)
			}
			err := acct.Rename(context.Background(), id, "new")
			if got := chatbot.IsNotFound(err); got != tt.wantNotFound {
				t.Fatalf("Rename error %v: a 404 %v, want %v", err, got, tt.wantNotFound)
			}
			seg, ok := acct.Lookup(id)
			if tt.wantNotFound {
				if !strings.HasPrefix(err.Error(), "segment "+id+": ") {
					t.Errorf("error %q does not name the segment", err)
				}
				if ok {
					t.Errorf("Lookup still finds the segment the API said is gone")
				}
				return
			}
			if !ok || seg.Name != "new" {
				t.Errorf("Lookup = %+v, %v; want it named new", seg, ok)
			}
			if inSim, _ := sim.Segment(id); inSim.Name != "new" {
				t.Errorf("the simulator names it %q, want new", inSim.Name)
			}
		})
	}
}

func TestAccountDelete(t *testing.T) {
	tests := []struct {
		name            string
		goneOutside     bool // deleted out of band after the listing
		fail            bool // the delete call answers 500
		wantAlreadyGone bool
		wantErr         bool
	}{
		{name: "deleted"},
		{name: "already gone", goneOutside: true, wantAlreadyGone: true},
		{name: "failed: still there", fail: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, acct := remotetest.Account(t, "ns")
			id := sim.Create("doomed")
			listed(t, sim, acct)
			if tt.goneOutside {
				sim.Delete(id)
			}
			if tt.fail {
				if err := sim.SetFaults(simulator.Faults{FailNext: 1, Endpoints: []simulator.Endpoint{simulator.EndpointDelete}}); err != nil {
					t.Fatal(err)
				}
			}
			alreadyGone, err := acct.Delete(context.Background(), id)
			if alreadyGone != tt.wantAlreadyGone {
				t.Errorf("alreadyGone = %v, want %v", alreadyGone, tt.wantAlreadyGone)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want one: %v", err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "segment "+id+": ") {
				t.Errorf("error %q does not name the segment", err)
			}
			_, inSim := sim.Segment(id)
			_, inView := acct.Lookup(id)
			if inSim != tt.wantErr || inView != tt.wantErr {
				t.Errorf("segment in the simulator %v, in Lookup %v; want both %v", inSim, inView, tt.wantErr)
			}
		})
	}
}

func TestAccountAddMembers(t *testing.T) {
	tests := []struct {
		name        string
		goneOutside bool // deleted out of band after the listing
		wantAdded   int
	}{
		{name: "added", wantAdded: 3},
		{name: "gone: recorded deleted", goneOutside: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, acct := remotetest.Account(t, "ns")
			id := sim.Create("seg", "x") // a member from before: the listing counts 1
			listed(t, sim, acct)
			if tt.goneOutside {
				sim.Delete(id)
			}
			added := ledger.New("x")
			users := []string{"a", "b", "c"}

			n, err := acct.AddMembers(context.Background(), id, users, added)
			if n != tt.wantAdded {
				t.Errorf("added %d, want %d", n, tt.wantAdded)
			}
			if tt.goneOutside {
				if !chatbot.IsNotFound(err) || !strings.HasPrefix(err.Error(), "segment "+id+": ") {
					t.Errorf("error %v, want the segment's 404", err)
				}
				if _, ok := acct.Lookup(id); ok {
					t.Error("Lookup still finds the segment the API said is gone")
				}
				if added.Len() != 1 {
					t.Errorf("ledger holds %d, want only the member from before", added.Len())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range append(users, "x") {
				if !added.Has(u) {
					t.Errorf("ledger misses %s", u)
				}
			}
			if seg, _ := acct.Lookup(id); seg.Users != 4 {
				t.Errorf("Lookup counts %d users, want the 4 the ledger holds", seg.Users)
			}
			if acct.Counted(id) {
				t.Error("Counted: the count our adds raised passes for the API's")
			}
			if seg, _ := sim.Segment(id); len(seg.Members) != 4 {
				t.Errorf("the simulator has members %v, want a, b, c and x", seg.Members)
			}
		})
	}
}
