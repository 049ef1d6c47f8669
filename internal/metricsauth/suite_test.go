// The suite serves a handler behind Filter, as the manager's metrics server does, with a
// control plane of its own that authorizes by RBAC: the filter runs as the manager's user
// with only the install's metrics-auth-role, and callers are service accounts whose tokens
// the API server issued, one bound to the install's metrics-reader role.
package metricsauth_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/segment-operator/segment-operator/internal/metricsauth"
	"github.com/segment-operator/segment-operator/test/localenv"
)

const (
	managerUser = "segment-operator-manager"
	monitoring  = "monitoring"
)

var (
	ctx     context.Context
	cancel  context.CancelFunc
	testEnv *envtest.Environment
	admin   kubernetes.Interface
	server  *httptest.Server
	// reviews counts the manager's requests to the API server: TokenReviews and
	// SubjectAccessReviews.
	reviews atomic.Int64
)

func TestMetricsAuth(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Metrics authentication and authorization")
}

var _ = BeforeSuite(func() {
	ctx, cancel = context.WithCancel(context.TODO())
	root, err := filepath.Abs(filepath.Join("..", ".."))
	Expect(err).NotTo(HaveOccurred())
	testEnv, err = localenv.RBACControlPlane(root)
	Expect(err).NotTo(HaveOccurred(), "hack/envtest.sh could not build the envtest control plane")
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	admin, err = kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{})
	Expect(err).NotTo(HaveOccurred())

	// The install's roles, as kustomize names them: the manager may review tokens and
	// access, and a scraper bound to metrics-reader may get /metrics.
	authRole, err := localenv.InstallClusterRole(ctx, c, filepath.Join(root, "config", "rbac", "metrics_auth_role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	readerRole, err := localenv.InstallClusterRole(ctx, c, filepath.Join(root, "config", "rbac", "metrics_reader_role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(localenv.BindClusterRole(ctx, c, "manager-metrics-auth", authRole, rbacv1.Subject{Kind: rbacv1.UserKind, Name: managerUser})).To(Succeed())
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: monitoring}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	for _, sa := range []string{"scraper", "stranger"} {
		_, err = admin.CoreV1().ServiceAccounts(monitoring).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	}
	Expect(localenv.BindClusterRole(ctx, c, "scraper-metrics-reader", readerRole,
		rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "scraper", Namespace: monitoring})).To(Succeed())

	user, err := testEnv.AddUser(envtest.User{Name: managerUser}, nil)
	Expect(err).NotTo(HaveOccurred())
	managerCfg := user.Config()
	httpClient, err := rest.HTTPClientFor(managerCfg)
	Expect(err).NotTo(HaveOccurred())
	httpClient.Transport = countReviews{next: httpClient.Transport}
	filter, err := metricsauth.Filter(managerCfg, httpClient)
	Expect(err).NotTo(HaveOccurred())
	handler, err := filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "segment_operator_up 1\n")
	}))
	Expect(err).NotTo(HaveOccurred())
	server = httptest.NewServer(handler)
	DeferCleanup(server.Close)
})

var _ = AfterSuite(func() {
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

var _ = Describe("the metrics endpoint", func() {
	It("refuses a request without a token, or with one the API server does not know", func() {
		Expect(get("/metrics", "")).To(HaveStatus(http.StatusUnauthorized))
		Expect(get("/metrics", "not-a-token")).To(HaveStatus(http.StatusUnauthorized))
	})

	It("refuses a service account the metrics-reader role is not bound to", func() {
		Expect(get("/metrics", token("stranger"))).To(And(HaveStatus(http.StatusForbidden),
			HaveBody(ContainSubstring("Authorization denied for user system:serviceaccount:monitoring:stranger"))))
	})

	It("serves a service account bound to metrics-reader, the path that role grants and no other", func() {
		scraper := token("scraper")
		Expect(get("/metrics", scraper)).To(And(HaveStatus(http.StatusOK), HaveBody(Equal("segment_operator_up 1\n"))))
		Expect(get("/debug/pprof/", scraper)).To(HaveStatus(http.StatusForbidden))
	})

	It("keeps its answers: a scraper's next requests cost the API server no review", func() {
		scraper := token("scraper")
		Expect(get("/metrics", scraper)).To(HaveStatus(http.StatusOK))
		before := reviews.Load()
		for range 5 {
			Expect(get("/metrics", scraper)).To(HaveStatus(http.StatusOK))
		}
		Expect(reviews.Load()).To(Equal(before))
	})
})

// get requests path from the filtered server, with token as a bearer token ("": none).
func get(path, token string) *http.Response {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server.URL+path, nil)
	Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(resp.Body.Close)
	return resp
}

// token is a token the API server issues for service account sa of namespace monitoring.
func token(sa string) string {
	tr, err := admin.CoreV1().ServiceAccounts(monitoring).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(600))}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

// countReviews counts the TokenReviews and SubjectAccessReviews sent through it.
type countReviews struct{ next http.RoundTripper }

func (c countReviews) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/tokenreviews") || strings.HasSuffix(req.URL.Path, "/subjectaccessreviews") {
		reviews.Add(1)
	}
	return c.next.RoundTrip(req)
}

func HaveStatus(code int) OmegaMatcher {
	return HaveField("StatusCode", code)
}

func HaveBody(m OmegaMatcher) OmegaMatcher {
	return WithTransform(func(r *http.Response) (string, error) {
		b, err := io.ReadAll(r.Body)
		return string(b), err
	}, m)
}
