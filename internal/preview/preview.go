package preview

import (
	"fmt"
	"strings"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/plan"
	"github.com/segment-operator/segment-operator/internal/text"
)

// Kind is what applying a manifest does about one Segment (see the package doc).
type Kind string

// The kinds of change, as the package doc (Kinds of change) describes them.
const (
	KindCreate       Kind = "create"
	KindAdopt        Kind = "adopt"
	KindRename       Kind = "rename"
	KindAdd          Kind = "add"
	KindRecreate     Kind = "recreate"
	KindNotRemovable Kind = "notRemovable"
	KindNone         Kind = "none"
	KindDelete       Kind = "delete"
	KindOrphan       Kind = "orphan"
	KindRefused      Kind = "refused"
	KindConflict     Kind = "conflict"
	KindStalled      Kind = "stalled"
	KindUnknown      Kind = "unknown"
)

// Changes reports whether a change of this kind changes anything, in the cluster or in
// ChatBot: plan --detailed-exitcode exits 2 for it.
func (k Kind) Changes() bool {
	switch k {
	case KindCreate, KindAdopt, KindRename, KindAdd, KindRecreate, KindDelete, KindOrphan:
		return true
	}
	return false
}

// Record is the record of the members the operator added to a Segment's remote segment,
// as far as the user can read it.
type Record struct {
	// Ledger is the record; nil when it cannot be read (a ConfigMap of the manager's
	// namespace, which users usually may not read).
	Ledger *ledger.Ledger
	// Added counts the members it records (status.memberRecord.added): known even when
	// Ledger is not.
	Added int
	// ConfigMap names where the record is when Ledger is nil, for the note that says so.
	ConfigMap string
}

// Input is what is known of one Segment.
type Input struct {
	// Manifest is the Segment as the files have it, its namespace set; nil for a Segment
	// of the cluster no file names any more (--prune).
	Manifest *usersv1alpha1.Segment
	// Live is the cluster's Segment of that name, with the operator's status; nil: a new
	// Segment.
	Live *usersv1alpha1.Segment
	// Members are the desired members (spec.members and spec.membersFrom), sorted and
	// unique; MembersError, if not "", is why they cannot be known (a missing ConfigMap, a
	// line that is not an ID): the controller stalls on it.
	Members      []string
	MembersError string
	// Record is the record of added members of Live.
	Record Record
	// Listed says that Account is the account's listing (--live).
	Listed  bool
	Account []chatbot.Segment
	// OwnerOf names ("namespace/name") the Segment, other than this one, that owns remote
	// segment id, or returns "". nil: none does.
	OwnerOf func(id string) string
	// Refused is the API server's message when it refuses the manifest (a server-side dry
	// run), "" when it takes it or was not asked.
	Refused string
}

// Count is a number of members: exact when Min == Max, else a bound (the record of added
// members could not be read).
type Count struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

func exactly(n int) Count { return Count{n, n} }

// String says the count in words: "3 members", "2 to 5 members", or "up to 5 members".
func (c Count) String() string {
	switch c.Min {
	case c.Max:
		return text.Plural(c.Max, "member")
	case 0:
		return fmt.Sprintf("up to %d members", c.Max)
	}
	return fmt.Sprintf("%d to %d members", c.Min, c.Max)
}

// Change is what applying the manifests does about one Segment.
type Change struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Kind      Kind   `json:"kind"`
	// ID is the remote segment the change is about, when known.
	ID string `json:"id,omitempty"`
	// AdoptBy says how the adopted segment is found: spec.id, status.id or name.
	AdoptBy    string `json:"adoptBy,omitempty"`
	RenameFrom string `json:"renameFrom,omitempty"`
	RenameTo   string `json:"renameTo,omitempty"`
	// MembersToAdd are the desired members to add, and MembersToAddSample up to 10 of them
	// (none when the count is a bound).
	MembersToAdd       Count    `json:"membersToAdd"`
	MembersToAddSample []string `json:"membersToAddSample,omitempty"`
	// MembersNotRemovable are the members added that are no longer desired, which the API
	// cannot remove.
	MembersNotRemovable Count `json:"membersNotRemovable"`
	// Owner is the Segment that owns the segment this one would take (conflict).
	Owner string `json:"owner,omitempty"`
	// Message is why, for refused, conflict, stalled and unknown.
	Message string `json:"message,omitempty"`
	// Notes say what the change could not see, or what it implies.
	Notes []string `json:"notes,omitempty"`
	// Text is the change in one line of words.
	Text string `json:"text"`

	// Plan is the planner's plan for the Segment, nil where none was computed (pruned,
	// refused, conflict, stalled, unknown, suspended); Drift goes with it.
	Plan  *plan.Plan `json:"-"`
	Drift plan.Drift `json:"-"`
}

// Line is the change as plan prints it: a mark (+ create, ~ change, - delete, = nothing,
// ! refused, conflict or stalled, ? unknown), the Segment, and Text.
func (c Change) Line() string {
	mark := "="
	switch c.Kind {
	case KindCreate:
		mark = "+"
	case KindAdopt, KindRename, KindAdd:
		mark = "~"
	case KindRecreate:
		mark = "±"
	case KindDelete, KindOrphan:
		mark = "-"
	case KindRefused, KindConflict, KindStalled:
		mark = "!"
	case KindUnknown:
		mark = "?"
	}
	return fmt.Sprintf("%s %s/%s: %s", mark, c.Namespace, c.Name, c.Text)
}

// Decide says what applying the manifest does about one Segment, or, for a pruned one
// (Manifest nil), what deleting it does.
func Decide(in Input) Change {
	if in.Manifest == nil {
		return prune(in.Live)
	}
	seg := applied(in.Manifest, in.Live)
	c := Change{Namespace: seg.Namespace, Name: seg.Name, ID: seg.OwnedID()}
	if c.ID == "" {
		c.ID = seg.Status.ID
	}
	if in.Refused != "" {
		return c.stop(KindRefused, in.Refused, "refused by the API server: "+in.Refused)
	}
	if seg.Spec.Suspend {
		c.Kind, c.Text = KindNone, "no change: suspended (spec.suspend), no remote call is made"
		return c
	}
	// Mirrors manage's first check (internal/controller/reconciler.go): a Segment does not
	// move to another segment.
	if owned := seg.OwnedID(); !seg.ObserveOnly() && owned != "" && seg.Spec.ID != "" && seg.Spec.ID != owned {
		msg := fmt.Sprintf("spec.id names remote segment %s, but this Segment already manages %s", seg.Spec.ID, owned)
		return c.stop(KindConflict, msg, msg)
	}
	if in.MembersError != "" {
		return c.stop(KindStalled, in.MembersError, "stalled (MembersSourceError): "+in.MembersError)
	}
	t := locate(seg, in)
	if t.kind != "" {
		c.Owner = t.owner
		c.Notes = t.notes
		return c.stop(t.kind, t.msg, t.line)
	}
	c.Notes = t.notes
	if t.observed != nil {
		c.ID, c.AdoptBy = t.observed.ID, t.by
	}
	if t.reset {
		seg.Status.ID = t.observed.ID
		seg.Status.MemberRecord = nil
	}

	// The record of added members: none for a segment made or adopted anew.
	added, exact := in.Record.Ledger, true
	switch {
	case t.observed == nil || t.reset:
		added = ledger.New()
	case added == nil:
		added, exact = ledger.New(), false
	}
	var p plan.Plan
	drift := plan.Drift{Unknown: true}
	if seg.ObserveOnly() {
		p = plan.For(seg, added, in.Members, t.observed) // as observeOnly calls it
	} else {
		p, drift = plan.Manage(seg, added, in.Members, t.observed, t.observed != nil && t.counted) // as manage calls it
	}
	c.Plan, c.Drift = &p, drift
	c.RenameFrom, c.RenameTo = p.RenameFrom, p.RenameTo
	c.MembersToAdd, c.MembersNotRemovable = exactly(len(p.Add)), exactly(p.NotRemovable)
	c.MembersToAddSample = p.Status().MembersToAddSample
	if !exact && !p.Create && !p.Recreate && !drift.Readd {
		n, a := len(in.Members), in.Record.Added
		c.MembersToAdd, c.MembersNotRemovable = Count{max(0, n-a), n}, Count{max(0, a-n), a}
		c.MembersToAddSample = nil
		where := "its ConfigMap in the manager's namespace"
		if in.Record.ConfigMap != "" {
			where = "ConfigMap " + in.Record.ConfigMap + " in the manager's namespace"
		}
		c.Notes = append(c.Notes, fmt.Sprintf("the record of the %s added is in %s, which cannot be read: "+
			"members to add and not removable are bounds", text.Plural(a, "member"), where))
		if seg.Spec.MemberRemovalPolicy == usersv1alpha1.MemberRemovalPolicyRecreate && seg.Spec.ID == "" && c.MembersNotRemovable.Max > 0 {
			c.Notes = append(c.Notes, "memberRemovalPolicy Recreate: the segment is recreated if a member added is no longer desired")
		}
	}
	if drift.Readd {
		c.Notes = append(c.Notes, fmt.Sprintf("the member count says at least %s added are missing: every desired member is added again",
			text.Plural(drift.Missing, "member")))
	}
	c.describe(seg, p, t, len(in.Members))
	return c
}

// stop ends a change that carries no plan.
func (c Change) stop(kind Kind, msg, line string) Change {
	c.Kind, c.Message, c.Text = kind, msg, line
	return c
}

// describe sets the kind and the text of a planned change.
func (c *Change) describe(seg *usersv1alpha1.Segment, p plan.Plan, t located, desired int) {
	var parts []string
	switch {
	case p.Create:
		c.Kind, c.ID = KindCreate, ""
		parts = append(parts, fmt.Sprintf("create segment %q with %s", seg.RemoteName(), text.Plural(desired, "member")))
		if t.gone != "" {
			parts[0] += fmt.Sprintf(" (remote segment %s no longer exists)", t.gone)
		}
	case p.Recreate:
		c.Kind = KindRecreate
		parts = append(parts, fmt.Sprintf("delete segment %s and create it anew with %s, to remove %s the API cannot remove "+
			"(memberRemovalPolicy Recreate)", c.ID, text.Plural(desired, "member"), text.Plural(p.NotRemovable, "member")))
	default:
		switch {
		case t.by != "":
			c.Kind = KindAdopt
			parts = append(parts, fmt.Sprintf("adopt segment %s (by %s)", c.ID, t.by))
		case p.RenameTo != "":
			c.Kind = KindRename
		case c.MembersToAdd.Min > 0:
			c.Kind = KindAdd
		case c.MembersNotRemovable.Min > 0:
			c.Kind = KindNotRemovable
		default:
			c.Kind = KindNone
		}
		if p.RenameTo != "" {
			parts = append(parts, fmt.Sprintf("rename segment %s from %q to %q", c.ID, p.RenameFrom, p.RenameTo))
		}
		maybe := ""
		if c.MembersToAdd.Min == 0 {
			maybe = "maybe "
		}
		switch {
		case c.MembersToAdd.Max == 0:
		case c.MembersToAdd.Min == c.MembersToAdd.Max:
			parts = append(parts, fmt.Sprintf("add %s to segment %s", c.MembersToAdd, c.ID))
		default:
			parts = append(parts, fmt.Sprintf("%sadd %s to segment %s (a bound: the record of added members is not readable)",
				maybe, c.MembersToAdd, c.ID))
		}
		if c.MembersNotRemovable.Max > 0 {
			parts = append(parts, fmt.Sprintf("%s the API cannot remove stay in it (memberRemovalPolicy Warn)", c.MembersNotRemovable))
		}
		if c.Kind == KindNone || c.Kind == KindNotRemovable {
			parts = append([]string{fmt.Sprintf("no change to segment %s", c.ID)}, parts...)
		}
	}
	line := strings.Join(parts, ", ")
	if seg.ObserveOnly() {
		// An observe-only Segment changes nothing: what managing would do is its status.plan.
		c.Kind = KindNone
		line = "no change (managementPolicy ObserveOnly); managing would " + line
		if p.Summary() == "" {
			line = fmt.Sprintf("no change (managementPolicy ObserveOnly): segment %s matches the spec", c.ID)
		}
	}
	c.Text = line
}

// applied is the Segment as the controller sees it once the manifest is applied: the
// manifest's spec, the cluster's status.
func applied(manifest, live *usersv1alpha1.Segment) *usersv1alpha1.Segment {
	seg := manifest.DeepCopy()
	if live != nil {
		seg.UID, seg.CreationTimestamp = live.UID, live.CreationTimestamp
		seg.Status = *live.Status.DeepCopy()
	}
	return seg
}

// located is the remote segment a Segment manages or would take, as claim (or find, for
// an observe-only Segment) in internal/controller/claim.go picks it; or why none can be
// known (kind).
type located struct {
	// observed is the segment (nil: none, one is created); by says how it is adopted ("":
	// it is owned already, or created).
	observed *chatbot.Segment
	by       string
	// counted: observed.Users is the API's own count (a listing), not status's.
	counted bool
	// reset: the segment is not the one status records; its record starts empty.
	reset bool
	// gone is the owned segment the listing no longer has (it is created again).
	gone  string
	notes []string
	// kind, msg, line, owner: no plan (conflict, stalled, unknown), and why.
	kind             Kind
	msg, line, owner string
}

func (t located) stop(kind Kind, msg string) located {
	t.kind, t.msg, t.line = kind, msg, string(kind)+": "+msg
	return t
}

// locate finds the remote segment, in claim's order (find's, observe-only): the owned one,
// the one spec.id names, the one status.id observed, under AdoptByName the one unmanaged
// segment of the desired name; none: a create.
func locate(seg *usersv1alpha1.Segment, in Input) located {
	var t located
	if owned := seg.OwnedID(); owned != "" {
		return owns(seg, in, owned)
	}
	if i := seg.PendingCreate(); i != nil {
		return t.stop(KindUnknown, fmt.Sprintf("a create of a segment named %q is pending (status.ownership.createPending): "+
			"the operator resolves what it made first", i.Name))
	}
	for _, c := range []struct{ id, by string }{{seg.Spec.ID, "spec.id"}, {seg.Status.ID, "status.id"}} {
		if c.id == "" {
			continue
		}
		if owner := ownerOf(in, c.id); owner != "" && !seg.ObserveOnly() {
			t.owner = owner
			return t.stop(KindConflict, fmt.Sprintf("remote segment %s is already managed by %s; this Segment leaves it alone", c.id, owner))
		}
		if in.Listed {
			s, found := lookup(in.Account, c.id)
			if found {
				return located{observed: &s, by: c.by, counted: true, reset: c.id != seg.Status.ID}
			}
			if c.by == "spec.id" {
				return t.stop(KindStalled, fmt.Sprintf("remote segment %s named by spec.id does not exist (RemoteNotFound)", c.id))
			}
			continue // gone: looked for as a new Segment would (claim's resetRemote)
		}
		if c.id == seg.Status.ID {
			return located{observed: plan.Recorded(seg), by: c.by}
		}
		t = located{observed: &chatbot.Segment{ID: c.id, Name: seg.RemoteName()}, by: c.by, reset: true}
		t.notes = append(t.notes, fmt.Sprintf("without --live the name of segment %s is not known: a rename may follow", c.id))
		return t
	}
	if seg.Spec.AdoptionPolicy != usersv1alpha1.AdoptionPolicyAdoptByName {
		return located{}
	}
	if !in.Listed {
		return t.stop(KindUnknown, fmt.Sprintf("adoptionPolicy AdoptByName: whether a segment named %q that no Segment manages "+
			"exists is known only from the account (--live)", seg.RemoteName()))
	}
	var candidates []chatbot.Segment
	for _, s := range in.Account {
		if s.Name == seg.RemoteName() && ownerOf(in, s.ID) == "" {
			candidates = append(candidates, s)
		}
	}
	switch len(candidates) {
	case 0:
		return located{}
	case 1:
		return located{observed: &candidates[0], by: "name", counted: true, reset: candidates[0].ID != seg.Status.ID}
	}
	return t.stop(KindStalled, fmt.Sprintf("%d remote segments are named %q and not managed by any Segment: set spec.id to the one "+
		"to adopt (AdoptionAmbiguous)", len(candidates), seg.RemoteName()))
}

// owns locates the segment the Segment owns: in the listing, else as status recorded it.
func owns(seg *usersv1alpha1.Segment, in Input, owned string) located {
	if !in.Listed {
		if r := plan.Recorded(seg); r != nil && r.ID == owned {
			return located{observed: r}
		}
		return located{}.stop(KindUnknown, fmt.Sprintf("status does not record remote segment %s (use --live)", owned))
	}
	if s, found := lookup(in.Account, owned); found {
		return located{observed: &s, counted: true}
	}
	if seg.Spec.ID != "" {
		return located{}.stop(KindStalled, fmt.Sprintf("remote segment %s named by spec.id does not exist; an adopted "+
			"segment is not recreated (RemoteNotFound)", owned))
	}
	return located{gone: owned} // created again (observe-only: would be)
}

func ownerOf(in Input, id string) string {
	if in.OwnerOf == nil {
		return ""
	}
	return in.OwnerOf(id)
}

func lookup(listed []chatbot.Segment, id string) (chatbot.Segment, bool) {
	for _, s := range listed {
		if s.ID == id {
			return s, true
		}
	}
	return chatbot.Segment{}, false
}

// prune says what deleting a Segment no file names any more does, by plan.OnDelete.
func prune(live *usersv1alpha1.Segment) Change {
	c := Change{Namespace: live.Namespace, Name: live.Name, ID: live.OwnedID()}
	why := fmt.Sprintf("deletionPolicy %s", live.DeletionPolicyOrDefault())
	if live.ObserveOnly() {
		why = "managementPolicy ObserveOnly"
	}
	pending := ""
	if i := live.PendingCreate(); i != nil {
		pending = fmt.Sprintf("whatever its pending create of a segment named %q made", i.Name)
	}
	switch plan.OnDelete(live) {
	case plan.DeleteRemote:
		c.Kind = KindDelete
		if c.ID != "" {
			c.Text = fmt.Sprintf("no file names it: delete it, and remote segment %s (%s)", c.ID, why)
		} else {
			c.Text = fmt.Sprintf("no file names it: delete it, and %s (%s)", pending, why)
		}
	case plan.HoldSuspended:
		c.Kind = KindDelete
		c.Text = fmt.Sprintf("no file names it: delete it; it is suspended, so it and remote segment %s are kept until "+
			"spec.suspend is false (or deletionPolicy Orphan)", c.ID)
	case plan.LeaveOwned:
		c.Kind = KindOrphan
		c.Text = fmt.Sprintf("no file names it: delete it, and leave remote segment %s in ChatBot (%s)", c.ID, why)
	case plan.LeavePending:
		c.Kind = KindOrphan
		c.Text = fmt.Sprintf("no file names it: delete it, and leave %s in ChatBot (%s)", pending, why)
	default:
		c.Kind = KindDelete
		c.Text = "no file names it: delete it (it manages no remote segment)"
	}
	return c
}
