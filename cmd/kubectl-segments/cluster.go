package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/version"
)

// client returns a client of the cluster the kubeconfig flags name, and the namespace
// they name (the context's, or default).
func (o *options) client() (client.Client, string, error) {
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	// With no kubeconfig at all, client-go falls back to http://localhost:8080, and the
	// error would be a refused connection there.
	if raw, err := o.kube.ToRawKubeConfigLoader().RawConfig(); err == nil && len(raw.Clusters) == 0 &&
		(o.kube.APIServer == nil || *o.kube.APIServer == "") && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, "", fmt.Errorf("no kubeconfig: none at $KUBECONFIG or ~/.kube/config; give --kubeconfig or --server")
	}
	cfg.UserAgent = "kubectl-segments/" + version.Get()
	ns, _, err := o.kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	if err := usersv1alpha1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("connect to the cluster: %w", err)
	}
	return c, ns, nil
}

// lister lists a ChatBot account, and can do nothing else: the plugin holds no other way
// to reach ChatBot.
type lister interface {
	ListSegments(ctx context.Context) ([]chatbot.Segment, error)
}

// tokenFlags say where the ChatBot token comes from: a file, a credentials Secret the user
// may read, or $CHATBOT_API_TOKEN.
type tokenFlags struct {
	file, secret, apiURL string
}

// lister returns a lister of the account the flags name. A Secret is read in namespace ns
// with c (nil when no cluster is needed); its apiURL key, if any, replaces the default.
func (t tokenFlags) lister(ctx context.Context, c client.Reader, ns string) (lister, error) {
	a, err := t.account(ctx, c, ns)
	return a.lister, err
}

// account is the ChatBot account the token flags name.
type account struct {
	lister
	// id is the account's ID as the manager records it in status.ownership.account: the
	// same base URL and token give the same ID.
	id string
	// from says where the token came from, for messages.
	from string
}

// account returns the account the flags name, as lister does.
func (t tokenFlags) account(ctx context.Context, c client.Reader, ns string) (account, error) {
	token, baseURL, from := "", t.apiURL, ""
	switch {
	case t.file != "":
		b, err := os.ReadFile(t.file)
		if err != nil {
			return account{}, fmt.Errorf("read the token: %w", err)
		}
		token, from = strings.TrimSpace(string(b)), "--token-file "+t.file
	case t.secret != "":
		if c == nil {
			return account{}, fmt.Errorf("--credentials-secret needs a cluster")
		}
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.secret}, &s); err != nil {
			return account{}, fmt.Errorf("read the credentials Secret %s/%s: %w", ns, t.secret, err)
		}
		token, from = strings.TrimSpace(string(s.Data[usersv1alpha1.CredentialsTokenKey])), "Secret "+ns+"/"+t.secret
		if u := strings.TrimSpace(string(s.Data[usersv1alpha1.CredentialsURLKey])); u != "" && baseURL == "" {
			baseURL = u
		}
	default:
		token, from = strings.TrimSpace(os.Getenv("CHATBOT_API_TOKEN")), "$CHATBOT_API_TOKEN"
	}
	if token == "" {
		return account{}, fmt.Errorf("no ChatBot token: give --token-file, --credentials-secret, or set $CHATBOT_API_TOKEN (%s is empty)", from)
	}
	l, err := chatbot.New(baseURL, token, chatbot.WithUserAgent("kubectl-segments/"+version.Get()))
	if err != nil {
		return account{}, err
	}
	return account{lister: l, id: remote.Credentials{BaseURL: baseURL, Token: token}.AccountID(), from: from}, nil
}

// addTo adds the token flags to a command.
func (t *tokenFlags) addTo(flags interface {
	StringVar(p *string, name, value, usage string)
}) {
	flags.StringVar(&t.file, "token-file", "", "File holding the ChatBot Developer access token (else --credentials-secret, else $CHATBOT_API_TOKEN).")
	flags.StringVar(&t.secret, "credentials-secret", "", "A credentials Secret of the namespace to read the token (and apiURL) from.")
	flags.StringVar(&t.apiURL, "api-url", "", "Base URL of the ChatBot API (default "+chatbot.DefaultBaseURL+", or the Secret's apiURL).")
}

// listSegments lists the Segments of every namespace, or, where the user may not, of the
// namespaces given: all says which. Its errors say what a failure means to the user.
func (o *options) listSegments(ctx context.Context, c client.Reader, namespaces []string) (items []usersv1alpha1.Segment, all bool, err error) {
	var list usersv1alpha1.SegmentList
	if err := c.List(ctx, &list); err == nil {
		return list.Items, true, nil
	} else if !apierrors.IsForbidden(err) {
		return nil, false, o.listSegmentsError(err, "Segments")
	}
	for _, ns := range namespaces {
		var list usersv1alpha1.SegmentList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, false, o.listSegmentsError(err, "the Segments of namespace "+ns)
		}
		items = append(items, list.Items...)
	}
	return items, false, nil
}

// listSegmentsError says why listing what failed: no Segment CRD, no cluster, or the API
// server's answer.
func (o *options) listSegmentsError(err error, what string) error {
	var status apierrors.APIStatus
	switch {
	case meta.IsNoMatchError(err):
		return fmt.Errorf("list %s: the cluster has no Segment resource: is segment-operator's CRD installed? %w", what, err)
	case !errors.As(err, &status):
		host := ""
		if cfg, cerr := o.kube.ToRESTConfig(); cerr == nil {
			host = " at " + cfg.Host
		}
		return fmt.Errorf("list %s: cannot reach the cluster%s: %w", what, host, err)
	}
	return fmt.Errorf("list %s: %w", what, err)
}

// addRecordNamespaceFlag adds --member-record-namespace, read by plan and status.
func addRecordNamespaceFlag(flags *pflag.FlagSet, namespace *string) {
	flags.StringVar(namespace, "member-record-namespace", "segment-operator-system",
		"The manager's namespace, where the records of large segments' added members are (read if permitted).")
}
