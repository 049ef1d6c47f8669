package ownership

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// fakePeers holds what another manager holds: remote IDs and names, by the Segment.
type fakePeers struct {
	held  map[string]types.NamespacedName // id or account/name → its holder
	let   []string
	until time.Time
}

func (p *fakePeers) Hold(_ context.Context, seg *usersv1alpha1.Segment, id string) (types.NamespacedName, bool, error) {
	if h, ok := p.held[id]; ok && h.Name != seg.Name {
		return h, false, nil
	}
	return types.NamespacedName{}, true, nil
}

func (p *fakePeers) Let(_ context.Context, uid types.UID, id string) {
	p.let = append(p.let, string(uid)+" "+id)
}

func (p *fakePeers) LockName(_ context.Context, seg *usersv1alpha1.Segment, account, name string) (func(), types.NamespacedName, time.Time, error) {
	if h, ok := p.held[account+"/"+name]; ok && h.Name != seg.Name {
		return nil, h, p.until, nil
	}
	return func() {}, types.NamespacedName{}, time.Time{}, nil
}

// With peers, what another manager's Segment holds is held here too, for every way of
// taking a segment; a free one is recorded as before.
func TestPeersHoldAcrossManagers(t *testing.T) {
	ctx := context.Background()
	other := types.NamespacedName{Namespace: "far", Name: "theirs"}
	peers := &fakePeers{held: map[string]types.NamespacedName{"s-theirs": other, "acct/vip": other},
		until: time.Now().Add(20 * time.Second)}
	r := registry(t).WithPeers(peers)
	me := segment("team", "me", nil)

	if got, err := r.Claim(ctx, me, "s-theirs"); err != nil || got != "a Segment in another namespace (on another shard)" {
		t.Errorf("Claim of another shard's segment = %q, %v", got, err)
	}
	bound := false
	got, err := r.ClaimWith(ctx, me, "acct", "s-theirs", nil, func(func()) error { bound = true; return nil })
	if err != nil || got == "" || bound {
		t.Errorf("ClaimWith of another shard's segment = %q, %v, bound %v", got, err, bound)
	}
	if _, err := r.Choose(ctx, me, func(func(string) bool) string { return "s-theirs" }); err == nil {
		t.Error("Choose took a segment another shard holds")
	}
	if got, err := r.Claim(ctx, me, "s-free"); err != nil || got != "" {
		t.Errorf("Claim of a free segment = %q, %v", got, err)
	}
	if got, _ := r.Owner(ctx, segment("team", "late", nil), "s-free"); got != "Segment team/me" {
		t.Errorf("a free segment claimed with peers is not recorded: owner %q", got)
	}

	_, err = r.LockName(ctx, me, "acct", "vip")
	var busy *BusyError
	if !errors.As(err, &busy) || busy.After != nameLockRetry || busy.Holder != "a Segment in another namespace" {
		t.Errorf("LockName of a name another shard holds = %v", err)
	}
	// Nothing was held here: the name is free to this process's others.
	unlock, err := r.LockName(ctx, segment("far", "theirs", nil), "acct", "vip")
	if err != nil {
		t.Fatal(err)
	}
	unlock()

	// Handed over to another manager: its claims here go, its holds among managers stay.
	r.Handover(me.UID)
	if got, _ := r.Owner(ctx, segment("team", "late", nil), "s-free"); got != "" {
		t.Errorf("after a handover, s-free is still held here by %q", got)
	}
	if len(peers.let) != 0 {
		t.Errorf("a handover let go of holds among managers: %q", peers.let)
	}
	r.Release(ctx, me, "s-free")
	owned := segment("team", "me", &usersv1alpha1.SegmentOwnership{ID: "s-mine"})
	r.Forget(ctx, owned)
	if want := []string{"team/me s-free", "team/me s-mine"}; len(peers.let) != 2 || peers.let[0] != want[0] || peers.let[1] != want[1] {
		t.Errorf("let go of %q; want %q", peers.let, want)
	}
}
