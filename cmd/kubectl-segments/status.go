package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/preview"
	"github.com/segment-operator/segment-operator/internal/sources"
	"github.com/segment-operator/segment-operator/internal/text"
)

func init() { subcommands = append(subcommands, newStatus) }

// recentEvents is how many of a Segment's events status shows.
const recentEvents = 10

func newStatus(o *options) *cobra.Command {
	var recordNamespace string
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Explain one Segment: its remote segment, members, conditions, events, and what the next reconcile will do",
		Long: "status shows one Segment on one screen: the remote segment it owns (and in which account), the segment as the\n" +
			"operator last listed it, the record of the members it added, its conditions with their ages, its recent\n" +
			"events, and what the next reconcile will do (computed as plan does, from status). It only reads.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			return writeStatus(cmd.Context(), o.out, c, types.NamespacedName{Namespace: ns, Name: args[0]}, recordNamespace, time.Now())
		},
	}
	addRecordNamespaceFlag(cmd.Flags(), &recordNamespace)
	return cmd
}

// writeStatus writes the status screen of the Segment key, read with c, as of now.
func writeStatus(ctx context.Context, w io.Writer, c client.Reader, key types.NamespacedName, recordNamespace string, now time.Time) error {
	seg := &usersv1alpha1.Segment{}
	if err := c.Get(ctx, key, seg); apierrors.IsNotFound(err) {
		return fmt.Errorf("no Segment %s", key)
	} else if err != nil {
		return fmt.Errorf("read Segment %s: %w", key, err)
	}
	age := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return duration.HumanDuration(now.Sub(t)) + " ago"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", label, fmt.Sprintf(format, args...))
	}

	st := seg.Status
	line("Segment", "%s (generation %d, observed %d)", key, seg.Generation, st.ObservedGeneration)
	line("Policies", "management %s, deletion %s, member removal %s, adoption %s%s", or(string(seg.Spec.ManagementPolicy), "Manage"),
		seg.DeletionPolicyOrDefault(), or(string(seg.Spec.MemberRemovalPolicy), "Warn"), or(string(seg.Spec.AdoptionPolicy), "None"),
		map[bool]string{true: ", suspended", false: ""}[seg.Spec.Suspend])
	switch o := st.Ownership; {
	case o != nil && o.ID != "":
		line("Owns", "remote segment %s, in account %s", o.ID, or(o.Account, "(not recorded yet)"))
	case seg.PendingCreate() != nil:
		i := seg.PendingCreate()
		line("Owns", "nothing yet: a create of %q was attempted %s (account %s) and its outcome is being resolved",
			i.Name, age(i.At.Time), or(i.Account, "-"))
	case st.ID != "":
		line("Owns", "nothing: it observes remote segment %s", st.ID)
	default:
		line("Owns", "nothing yet")
	}
	if st.ID != "" {
		created := "-"
		if st.CreatedAt != nil {
			created = st.CreatedAt.UTC().Format(time.RFC3339)
		}
		line("Remote segment", "%q, %s, created %s (as last listed)", st.Name, text.Plural(int(st.RemoteMembers), "member"), created)
	}

	members, membersErr := sources.NewReader(c, c, sources.Limits{}).Members(ctx, seg)
	var bad *sources.Error
	switch {
	case errors.As(membersErr, &bad):
		line("Desired members", "cannot be read: %s", bad.Error())
	case membersErr != nil:
		return fmt.Errorf("Segment %s: members: %w", key, membersErr)
	case len(seg.Spec.MembersFrom) == 0:
		line("Desired members", "%d (spec.members)", len(members))
	default:
		line("Desired members", "%d (%d in spec.members, the rest from %s of spec.membersFrom)", len(members),
			len(seg.Spec.Members), text.Plural(len(seg.Spec.MembersFrom), "ConfigMap key"))
	}
	record, err := readRecord(ctx, c, recordNamespace, seg)
	if err != nil {
		return err
	}
	where := "in status"
	switch {
	case record.ConfigMap != "" && record.Ledger == nil:
		where = fmt.Sprintf("in ConfigMap %s/%s, which you may not read", recordNamespace, record.ConfigMap)
	case record.ConfigMap != "":
		where = fmt.Sprintf("in ConfigMap %s/%s", recordNamespace, record.ConfigMap)
	}
	line("Added by the operator", "%d (the record of added members, %s); not removable %d; missing by the count %d",
		record.Added, where, st.NotRemovableMembers, st.MissingMembers)
	if r := st.MemberRecord.Readd(); r != nil {
		line("Re-added", "%d missing members, %s", r.Missing, age(r.At.Time))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nConditions:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(st.Conditions) == 0 {
		fmt.Fprintln(tw, "  none yet: the operator has not reconciled it")
	}
	for _, cond := range st.Conditions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", cond.Type, cond.Status, cond.Reason, age(cond.LastTransitionTime.Time), text.Cut(cond.Message, 300))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nEvents:")
	events, err := segmentEvents(ctx, c, seg)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	switch {
	case apierrors.IsForbidden(err):
		fmt.Fprintln(tw, "  not shown: you may not list events in the namespace")
	case err != nil:
		return fmt.Errorf("list the events of Segment %s: %w", key, err)
	case len(events) == 0:
		fmt.Fprintln(tw, "  none (events last an hour)")
	}
	for _, e := range events {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", age(eventTime(e)), e.Type, e.Reason, text.Cut(e.Message, 300))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	in := preview.Input{Manifest: seg, Live: seg, Members: members, Record: record}
	if bad != nil {
		in.MembersError = bad.Error()
	}
	next := preview.Decide(in)
	_, err = fmt.Fprintf(w, "\nNext reconcile: %s\n", next.Text)
	for _, n := range next.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	return err
}

// segmentEvents returns the Segment's most recent events, oldest first.
func segmentEvents(ctx context.Context, c client.Reader, seg *usersv1alpha1.Segment) ([]corev1.Event, error) {
	var list corev1.EventList
	sel := fields.AndSelectors(fields.OneTermEqualSelector("involvedObject.name", seg.Name),
		fields.OneTermEqualSelector("involvedObject.kind", "Segment"))
	if err := c.List(ctx, &list, client.InNamespace(seg.Namespace), client.MatchingFieldsSelector{Selector: sel}); err != nil {
		return nil, err
	}
	events := slices.DeleteFunc(list.Items, func(e corev1.Event) bool { return e.InvolvedObject.UID != "" && e.InvolvedObject.UID != seg.UID })
	slices.SortFunc(events, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	return events[max(0, len(events)-recentEvents):], nil
}

// eventTime is when an event last happened, whichever API wrote it.
func eventTime(e corev1.Event) time.Time {
	var series time.Time
	if e.Series != nil {
		series = e.Series.LastObservedTime.Time
	}
	for _, t := range []time.Time{series, e.LastTimestamp.Time, e.EventTime.Time, e.FirstTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return e.CreationTimestamp.Time
}

func or(s, otherwise string) string {
	if strings.TrimSpace(s) == "" {
		return otherwise
	}
	return s
}
