// Package listed_test runs the manager as --namespace-credentials=<namespaces> would: as a
// user the API server authorizes by RBAC alone, with the install's ClusterRoles, and access
// to Secrets granted only by a RoleBinding in each listed namespace. It has a control plane
// of its own: the controller suite's manager reads Secrets in every namespace, and both
// would reconcile the same Segments.
package listed_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
	"github.com/segment-operator/segment-operator/internal/controller"
	"github.com/segment-operator/segment-operator/internal/credentials"
	"github.com/segment-operator/segment-operator/internal/recorder"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/test/localenv"
)

const (
	simToken = "listed-token"
	// managerUser is who the manager is to the API server.
	managerUser = "segment-operator-manager"
	// bound is listed and grants the manager access from the start; late is listed and
	// grants it only later; unlisted is not listed (its admin binds the role all the same).
	bound, late, unlisted = "team-bound", "team-late", "team-unlisted"
	// odd is listed, and its admin binds another role under the RoleBinding's name: one that
	// grants Secrets but not the RoleBinding itself.
	odd = "team-odd"

	timeout = 30 * time.Second
	poll    = 50 * time.Millisecond
	// syncTimeout allows for the backoff of a watch that was refused (up to 30 s).
	syncTimeout = 90 * time.Second
)

var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *envtest.Environment
	k8sClient client.Client
	// managerClient is the manager's own identity, for checking what it may not do.
	managerClient client.Client
	sim           *simulator.Server
)

func TestListedNamespaces(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Credentials in listed namespaces")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.TODO())
	root := filepath.Join("..", "..", "..")

	Expect(usersv1alpha1.AddToScheme(scheme.Scheme)).To(Succeed())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: envtestAssets(root),
	}
	testEnv.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())
	Expect(localenv.InstallAdmission(ctx, k8sClient, root)).To(Succeed())

	for _, ns := range []string{bound, late, unlisted, odd} {
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	// The install's roles, as kustomize names them.
	managerRole := clusterRole(filepath.Join(root, "config", "rbac", "role.yaml"))
	credentialsRole := clusterRole(filepath.Join(root, "config", "rbac", "credentials_namespaced_role.yaml"))
	Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "segment-operator-manager-rolebinding"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: managerRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: managerUser}},
	})).To(Succeed())
	Expect(credentialsRole).To(Equal(credentialsRoleName), "the README's kubectl create rolebinding names it so")
	grantSecrets(bound)
	grantSecrets(unlisted)
	Expect(k8sClient.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secrets-only", Namespace: odd},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "patch"}}}})).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: credentials.RoleBinding, Namespace: odd},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "secrets-only"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: managerUser}},
	})).To(Succeed())

	user, err := testEnv.AddUser(envtest.User{Name: managerUser}, nil)
	Expect(err).NotTo(HaveOccurred())
	managerCfg := user.Config()
	managerClient, err = client.New(managerCfg, client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())

	sim, err = simulator.New(simulator.Options{Token: simToken})
	Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(sim)
	DeferCleanup(srv.Close)

	startManager(managerCfg, srv.URL)
})

var _ = AfterSuite(func() {
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// startManager runs the manager as cmd/main.go does with --namespace-credentials=team-bound,team-late,team-odd.
func startManager(cfg *rest.Config, simURL string) {
	scope, err := credentials.ParseSecretScope(bound + "," + late + "," + odd)
	Expect(err).NotTo(HaveOccurred())
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controller.CacheOptions(scope, nil),
	})
	Expect(err).NotTo(HaveOccurred())
	eventRecorder, err := recorder.ForManager(mgr, "segment-operator")
	Expect(err).NotTo(HaveOccurred())
	Expect((&controller.SegmentReconciler{
		Client:   mgr.GetClient(),
		Recorder: eventRecorder,
		Accounts: remote.NewAccounts(remote.AccountOptions{Share: 2}),
		DefaultCredentials: func() (remote.Credentials, error) {
			return remote.Credentials{BaseURL: simURL}, nil // no token of its own
		},
		SecretScope:             scope,
		DriftInterval:           2 * time.Second,
		MaxConcurrentReconciles: 4,
		NamespaceShare:          2,
		CreateTimeout:           time.Second,
		MemberRecordNamespace:   "default",
	}).SetupWithManager(ctx, mgr)).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
}

const credentialsRoleName = "segment-operator-credentials-namespaced-role"

// clusterRole creates the ClusterRole of the install's file and returns its name as
// kustomize's namePrefix makes it.
func clusterRole(path string) string {
	name, err := localenv.InstallClusterRole(ctx, k8sClient, path)
	Expect(err).NotTo(HaveOccurred())
	return name
}

// grantSecrets does what the README tells an administrator to do for a listed namespace:
//
//	kubectl -n <ns> create rolebinding segment-operator-credentials \
//	  --clusterrole=segment-operator-credentials-namespaced-role --serviceaccount=...
func grantSecrets(ns string) {
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: credentials.RoleBinding, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: credentialsRoleName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: managerUser}},
	})).To(Succeed())
}

// envtestAssets returns the directory of kube-apiserver and etcd: $KUBEBUILDER_ASSETS as
// `make test` sets it, or else what hack/envtest.sh builds (and caches) for this checkout.
func envtestAssets(root string) string {
	abs, err := filepath.Abs(root)
	Expect(err).NotTo(HaveOccurred())
	dir, err := localenv.Assets(abs)
	Expect(err).NotTo(HaveOccurred(), "hack/envtest.sh could not build the envtest control plane")
	return dir
}
