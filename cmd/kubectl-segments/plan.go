package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/memberrecord"
	"github.com/segment-operator/segment-operator/internal/ownership"
	"github.com/segment-operator/segment-operator/internal/preview"
	"github.com/segment-operator/segment-operator/internal/sources"
)

func init() { subcommands = append(subcommands, newPlan) }

// fieldOwner is the field manager of plan's server-side dry runs.
const fieldOwner = "kubectl-segments"

type planFlags struct {
	files           []string
	kustomize       string
	prune, live     bool
	output          string
	detailed        bool
	recordNamespace string
	token           tokenFlags
}

func newPlan(o *options) *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan -f FILE|DIR [-k DIR] [--prune] [--live] [-o text|json] [--detailed-exitcode]",
		Short: "Show what the operator will do once Segment manifests are applied",
		Long: "plan reads Segment manifests and says, for each, what the operator will do once they are applied: create,\n" +
			"adopt, rename, add members, recreate, nothing; or that the API server refuses it (a server-side dry run), or\n" +
			"that its segment is another Segment's. It computes this with the controller's own planner, from the Segments'\n" +
			"status (the operator's last observation): it needs only read access to Segments. --live lists the ChatBot\n" +
			"account for what status cannot say (adoption by name, a Segment not reconciled yet).\n\n" +
			"Exit codes: 0 no change (or without --detailed-exitcode), 1 an error, 2 changes (with --detailed-exitcode).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.plan(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&f.files, "filename", "f", nil, "Files or directories of Segment manifests (and the ConfigMaps they read members from).")
	fl.StringVarP(&f.kustomize, "kustomize", "k", "", "A kustomization directory, built as kubectl apply -k would.")
	fl.BoolVar(&f.prune, "prune", false, "Also show the Segments of the files' namespaces that no file names: what deleting them does.")
	fl.BoolVar(&f.live, "live", false, "List the ChatBot account (read-only) for what status cannot say.")
	fl.StringVarP(&f.output, "output", "o", outputText, "Output format: text or json.")
	fl.BoolVar(&f.detailed, "detailed-exitcode", false, "Exit 2 when there are changes (0 none, 1 an error).")
	addRecordNamespaceFlag(fl, &f.recordNamespace)
	f.token.addTo(fl)
	return cmd
}

// plan runs kubectl segments plan.
func (o *options) plan(ctx context.Context, f planFlags) error {
	if f.output != outputText && f.output != outputJSON {
		return fmt.Errorf("--output must be text or json, not %q", f.output)
	}
	if len(f.files) == 0 && f.kustomize == "" {
		return errors.New("give the manifests with -f FILE|DIR or -k DIR")
	}
	var m manifests
	if err := m.readFiles(f.files); err != nil {
		return err
	}
	if f.kustomize != "" {
		if err := m.readKustomization(f.kustomize); err != nil {
			return err
		}
	}
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	if err := m.defaultNamespace(ns); err != nil {
		return err
	}
	cl, err := o.readCluster(ctx, c, &m)
	if err != nil {
		return err
	}
	var account []chatbot.Segment
	if f.live {
		l, err := f.token.lister(ctx, c, ns)
		if err != nil {
			return err
		}
		if account, err = l.ListSegments(ctx); err != nil {
			return fmt.Errorf("list the ChatBot account: %w", err)
		}
	}

	members := sources.NewReader(filesFirst{m.configMaps, c}, filesFirst{m.configMaps, c}, sources.Limits{})
	var changes []preview.Change
	admissionChecked := true
	named := map[types.NamespacedName]bool{}
	for _, mf := range m.segments {
		key := client.ObjectKeyFromObject(mf.seg)
		named[key] = true
		live := cl.segments[key]
		in := preview.Input{Manifest: mf.seg, Live: live, Listed: f.live, Account: account, OwnerOf: cl.ownerOf(key)}
		if in.Refused, err = dryRun(ctx, c, mf); errors.Is(err, errNotPermitted) {
			admissionChecked = false
		} else if err != nil {
			return err
		}
		in.Members, err = members.Members(ctx, mf.seg)
		if bad := (*sources.Error)(nil); errors.As(err, &bad) {
			in.MembersError = bad.Error()
		} else if err != nil {
			return fmt.Errorf("Segment %s: members: %w", key, err)
		}
		if live != nil {
			if in.Record, err = readRecord(ctx, c, f.recordNamespace, live); err != nil {
				return err
			}
		}
		changes = append(changes, preview.Decide(in))
	}
	if f.prune {
		for key, live := range cl.segments {
			if !named[key] && cl.namespaces[key.Namespace] {
				changes = append(changes, preview.Decide(preview.Input{Live: live}))
			}
		}
	}

	var notes []string
	if !admissionChecked {
		notes = append(notes, "admission was not checked: you may not write Segments, so no server-side dry run was made")
	}
	if !cl.allNamespaces {
		notes = append(notes, "owners were looked for only in the files' namespaces (you may not list Segments in all namespaces)")
	}
	report := preview.NewReport(changes, notes...)
	if f.output == outputJSON {
		b, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(o.out, string(b)); err != nil {
			return err
		}
	} else if err := report.WriteText(o.out); err != nil {
		return err
	}
	if f.detailed && report.Summary.Changes() > 0 {
		return exitCode(2)
	}
	return nil
}

// cluster is what plan reads of the cluster's Segments.
type cluster struct {
	// segments are the Segments of the files' namespaces (namespaces).
	segments   map[types.NamespacedName]*usersv1alpha1.Segment
	namespaces map[string]bool
	// owners maps a remote ID to the Segments that own it: of every namespace when
	// allNamespaces, else of the files' namespaces.
	owners        map[string][]types.NamespacedName
	allNamespaces bool
}

// readCluster lists the Segments of the files' namespaces, and those of every namespace
// if the user may, to know who owns which remote segment.
func (o *options) readCluster(ctx context.Context, c client.Reader, m *manifests) (*cluster, error) {
	cl := &cluster{segments: map[types.NamespacedName]*usersv1alpha1.Segment{}, namespaces: map[string]bool{},
		owners: map[string][]types.NamespacedName{}}
	for _, s := range m.segments {
		cl.namespaces[s.seg.Namespace] = true
	}
	items, all, err := o.listSegments(ctx, c, slices.Sorted(maps.Keys(cl.namespaces)))
	if err != nil {
		return nil, err
	}
	cl.allNamespaces = all
	for i := range items {
		s := &items[i]
		key := client.ObjectKeyFromObject(s)
		if cl.namespaces[s.Namespace] {
			cl.segments[key] = s
		}
		if id := ownership.HeldID(s); id != "" { // as the controller's ownership check reads it
			cl.owners[id] = append(cl.owners[id], key)
		}
	}
	return cl, nil
}

// ownerOf returns who owns a remote ID, other than the Segment self.
func (cl *cluster) ownerOf(self types.NamespacedName) func(string) string {
	return func(id string) string {
		for _, o := range cl.owners[id] {
			if o != self {
				return o.String()
			}
		}
		return ""
	}
}

// errNotPermitted: the user may not write Segments, so the API server cannot be asked
// whether it takes one.
var errNotPermitted = errors.New("not permitted to write Segments")

// rbacDenied matches the API server's message for a request RBAC refuses, as opposed to
// one an admission plugin or policy refuses.
var rbacDenied = regexp.MustCompile(`cannot (patch|create|update) resource "segments"`)

// dryRun applies the manifest as written, server-side, as a dry run: the API server
// validates it (schema, CEL rules, admission policies) and stores nothing. It returns the
// API server's message when it refuses it.
func dryRun(ctx context.Context, c client.Client, mf manifest) (string, error) {
	obj := mf.object.DeepCopy()
	err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.DryRunAll, client.FieldOwner(fieldOwner), client.ForceOwnership)
	var status apierrors.APIStatus
	switch {
	case err == nil:
		return "", nil
	case apierrors.IsForbidden(err) && rbacDenied.MatchString(err.Error()):
		return "", errNotPermitted
	case errors.As(err, &status) && status.Status().Code >= 400 && status.Status().Code < 500 && !apierrors.IsUnauthorized(err):
		return err.Error(), nil
	}
	return "", fmt.Errorf("dry run of Segment %s/%s: %w", mf.seg.Namespace, mf.seg.Name, err)
}

// readRecord returns the record of the members the operator added to the Segment's
// segment: from status, or from its ConfigMap in the manager's namespace if the user may
// read it (else only its count).
func readRecord(ctx context.Context, c client.Reader, namespace string, seg *usersv1alpha1.Segment) (preview.Record, error) {
	var r preview.Record
	if rec := seg.Status.MemberRecord; rec != nil {
		r.Added, r.ConfigMap = int(rec.Added), rec.ConfigMap
	}
	l, _, inStatus, err := memberrecord.InStatus(seg)
	if err != nil {
		return r, fmt.Errorf("Segment %s/%s: %w", seg.Namespace, seg.Name, err)
	}
	if inStatus {
		r.Ledger = l
		return r, nil
	}
	cm := &corev1.ConfigMap{}
	err = c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: r.ConfigMap}, cm)
	switch {
	case apierrors.IsForbidden(err):
		return r, nil // the bound
	case apierrors.IsNotFound(err):
		r.Ledger = ledger.New() // the controller takes it as lost: every desired member is added again
		return r, nil
	case err != nil:
		return r, fmt.Errorf("read the member record %s/%s: %w", namespace, r.ConfigMap, err)
	}
	l, remoteID, err := memberrecord.FromConfigMap(cm)
	if err != nil {
		return r, err
	}
	if remoteID != seg.OwnedID() {
		l = ledger.New() // of an earlier segment (before a Recreate)
	}
	r.Ledger = l
	return r, nil
}

// filesFirst reads ConfigMaps from the files before the cluster: a spec.membersFrom
// ConfigMap in the manifests is what the Segment will read once they are applied.
type filesFirst struct {
	files   []*corev1.ConfigMap
	cluster client.Reader
}

func (r filesFirst) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	i := slices.IndexFunc(r.files, func(cm *corev1.ConfigMap) bool { return cm.Namespace == key.Namespace && cm.Name == key.Name })
	if i < 0 {
		return r.cluster.Get(ctx, key, obj, opts...)
	}
	cm := r.files[i].DeepCopy()
	cm.UID, cm.ResourceVersion = types.UID("file:"+key.String()), "file"
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		*o = *cm
	default:
		obj.SetName(cm.Name)
		obj.SetNamespace(cm.Namespace)
		obj.SetLabels(cm.Labels)
		obj.SetAnnotations(cm.Annotations)
		obj.SetUID(cm.UID)
		obj.SetResourceVersion(cm.ResourceVersion)
	}
	return nil
}

func (r filesFirst) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.cluster.List(ctx, list, opts...)
}
