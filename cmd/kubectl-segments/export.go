package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/export"
	"github.com/segment-operator/segment-operator/internal/ownership"
)

func init() { subcommands = append(subcommands, newExport) }

// exportFlags are export's own flags.
type exportFlags struct {
	token          tokenFlags
	credentialsRef string
	deletionPolicy string
	output         string
	dir            string
}

func newExport(o *options) *cobra.Command {
	f := &exportFlags{}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write Segment manifests that adopt every segment of a ChatBot account",
		Long: "export lists a ChatBot account and writes, for each segment no Segment in the cluster manages yet, a\n" +
			"Segment that adopts it by spec.id, with its exact spec.name and deletionPolicy Orphan (unless\n" +
			"--deletion-policy Delete). Applying them creates nothing in ChatBot.\n\n" +
			"The API cannot list a segment's members: spec.members is left empty, and the operator never removes a\n" +
			"member. Segments already managed by a Segment in the cluster are left out, and named on stderr.\n\n" +
			"The manifests go to stdout (-o yaml, the default, or json), or with --output-dir one file per Segment\n" +
			"and a kustomization.yaml, for `kubectl apply -k`.",
		Example: "  kubectl segments export -n marketing --token-file token --output-dir segments/\n" +
			"  kubectl segments export -n marketing --credentials-secret chatbot -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context(), o) },
	}
	flags := cmd.Flags()
	f.token.addTo(flags)
	flags.StringVar(&f.credentialsRef, "credentials-ref", "", "Set spec.credentialsRef.name to this Secret (default: --credentials-secret, if given; else none: the manager's credentials).")
	flags.StringVar(&f.deletionPolicy, "deletion-policy", string(usersv1alpha1.DeletionPolicyOrphan), "spec.deletionPolicy of every Segment: Orphan leaves the segment in ChatBot when its Segment is deleted, Delete deletes it.")
	flags.StringVarP(&f.output, "output", "o", outputYAML, "Output format: yaml or json.")
	flags.StringVar(&f.dir, "output-dir", "", "Write one <name>.yaml per Segment and a kustomization.yaml into this directory, instead of stdout.")
	return cmd
}

func (f *exportFlags) run(ctx context.Context, o *options) error {
	policy := usersv1alpha1.DeletionPolicy(f.deletionPolicy)
	if policy != usersv1alpha1.DeletionPolicyOrphan && policy != usersv1alpha1.DeletionPolicyDelete {
		return fmt.Errorf("--deletion-policy must be Orphan or Delete, not %q", f.deletionPolicy)
	}
	if f.output != outputYAML && f.output != outputJSON {
		return fmt.Errorf("-o must be yaml or json, not %q", f.output)
	}
	if f.dir != "" && f.output != outputYAML {
		return fmt.Errorf("--output-dir writes YAML: -o %s cannot go with it", f.output)
	}
	credentialsRef := f.credentialsRef
	if credentialsRef == "" {
		credentialsRef = f.token.secret
	}

	// The cluster first: without it, segments a Segment manages would be exported again.
	c, ns, err := o.client()
	if err != nil {
		return fmt.Errorf("export needs the cluster, to leave out the segments Segments already manage: %w", err)
	}
	segs, all, err := o.listSegments(ctx, c, []string{ns})
	if err != nil {
		return err
	}
	if !all {
		fmt.Fprintf(o.errOut, "note: you may not list Segments in every namespace: only those of namespace %s were checked, "+
			"and a segment a Segment elsewhere manages is exported too (the operator would report Conflict for it)\n", ns)
	}
	acct, err := f.token.account(ctx, c, ns)
	if err != nil {
		return err
	}
	listed, err := acct.ListSegments(ctx)
	if err != nil {
		return listError(err, acct.from)
	}

	owned := map[string]string{}
	var taken []string
	for i := range segs {
		s := &segs[i]
		if id := ownedID(s, acct.id); id != "" {
			owned[id] = s.Namespace + "/" + s.Name
		}
		if s.Namespace == ns {
			taken = append(taken, s.Name)
		}
	}
	res := export.Plan(listed, owned, export.Options{
		Namespace: ns, CredentialsRef: credentialsRef, DeletionPolicy: policy, Taken: taken,
	})
	for _, s := range res.Skipped {
		fmt.Fprintf(o.errOut, "left out: %s %q: %s\n", s.Remote.ID, s.Remote.Name, s.Reason)
	}
	if len(res.Items) > 0 {
		fmt.Fprintln(o.errOut, "note: the ChatBot API cannot list a segment's members: every spec.members is left empty (the operator never removes a member)")
	}
	return f.write(o, res, ns)
}

// ownedID is the remote segment s manages in account, or "": one recorded in another
// account is another segment. A record without an account, or an earlier version's hold,
// is counted: it may be in this account, and leaving a segment out is the safe mistake.
func ownedID(s *usersv1alpha1.Segment, account string) string {
	if o := s.Status.Ownership; o != nil {
		if o.ID != "" && (o.Account == "" || o.Account == account) {
			return o.ID
		}
		return ""
	}
	return ownership.LegacyHold(s)
}

// listError says what a failed listing means for the user.
func listError(err error, from string) error {
	if apiErr, ok := chatbot.AsAPIError(err); ok && apiErr.Unauthorized() {
		return fmt.Errorf("ChatBot refused the token from %s (HTTP %d): check the token and --api-url: %w", from, apiErr.StatusCode, err)
	}
	return fmt.Errorf("list the ChatBot account (token from %s): %w", from, err)
}

// write writes the manifests to stdout, or into the output directory.
func (f *exportFlags) write(o *options, res export.Result, ns string) error {
	if f.dir == "" {
		render := res.YAML
		if f.output == outputJSON {
			render = res.JSON
		}
		b, err := render()
		if err != nil {
			return err
		}
		_, err = o.out.Write(b)
		return err
	}
	files, err := res.Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return err
	}
	for _, file := range files {
		if err := os.WriteFile(filepath.Join(f.dir, file.Name), file.Data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.errOut, "wrote %d Segments of namespace %s, one file each, and %s to %s: apply them with kubectl apply -k %s\n",
		len(res.Items), ns, export.KustomizationFile, f.dir, f.dir)
	return nil
}
