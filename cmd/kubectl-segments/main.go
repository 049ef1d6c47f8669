// Command kubectl-segments is segment-operator's kubectl plugin (kubectl segments): it
// brings an existing ChatBot account into Git (export), shows what applying Segment
// manifests will do before they merge (plan), and explains one Segment (status).
//
// It is read-only by construction: it reaches ChatBot only through a lister, which can
// list an account and do nothing else, and it writes to the cluster only server-side dry
// runs.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/segment-operator/segment-operator/internal/version"
)

// The output formats of -o (export: yaml or json; plan: text or json).
const (
	outputYAML = "yaml"
	outputJSON = "json"
	outputText = "text"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// exitCode ends the command with a code other than 0 or 1, and no message of its own: plan
// --detailed-exitcode exits 2 when there are changes.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// run runs the plugin with args and returns its exit code: 0 done, 1 an error (said on
// stderr), or what the command asks (exitCode).
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	}
	fmt.Fprintln(stderr, "error:", err)
	return 1
}

// options are what every subcommand shares: the kubeconfig flags kubectl itself takes, and
// where to write.
type options struct {
	kube        *genericclioptions.ConfigFlags
	out, errOut io.Writer
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	o := &options{kube: genericclioptions.NewConfigFlags(true), out: stdout, errOut: stderr}
	root := &cobra.Command{
		Use:   "kubectl-segments",
		Short: "Bring a ChatBot account into Git, and see what applying Segments will do",
		Long: "kubectl segments works with the Segments of segment-operator. It never writes to ChatBot, and writes to the\n" +
			"cluster only server-side dry runs.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl segments"},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	o.kube.AddFlags(root.PersistentFlags())
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(stdout, version.Get())
			return err
		},
	})
	for _, add := range subcommands {
		root.AddCommand(add(o))
	}
	return root
}

// subcommands are added by the files that define them.
var subcommands []func(*options) *cobra.Command
