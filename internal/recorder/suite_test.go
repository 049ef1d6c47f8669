package recorder

// The suite writes Events to a control plane of its own, as the manager's user with only
// the install's manager role: what the API server accepts and how it shows them.

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/segment-operator/segment-operator/test/localenv"
)

const (
	managerUser = "segment-operator-manager"
	namespace   = "team-a"
	timeout     = 20 * time.Second
)

var (
	ctx     context.Context
	cancel  context.CancelFunc
	testEnv *envtest.Environment
	admin   kubernetes.Interface
	rec     *Recorder
)

func TestRecorder(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Events")
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
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())

	// The install's manager role, as kustomize names it.
	c, err := client.New(cfg, client.Options{})
	Expect(err).NotTo(HaveOccurred())
	role, err := localenv.InstallClusterRole(ctx, c, filepath.Join(root, "config", "rbac", "role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(localenv.BindClusterRole(ctx, c, "manager", role, rbacv1.Subject{Kind: rbacv1.UserKind, Name: managerUser})).To(Succeed())
	user, err := testEnv.AddUser(envtest.User{Name: managerUser}, nil)
	Expect(err).NotTo(HaveOccurred())
	httpClient, err := rest.HTTPClientFor(user.Config())
	Expect(err).NotTo(HaveOccurred())
	rec, err = New(user.Config(), httpClient, scheme.Scheme, Options{Controller: "segment-operator", SeriesEvery: 200 * time.Millisecond,
		Log: logr.Discard()})
	Expect(err).NotTo(HaveOccurred())
	go func() {
		defer GinkgoRecover()
		Expect(rec.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

var _ = Describe("the Recorder", func() {
	It("writes an Event as client-go does, and counts its repeats in its series", func() {
		cm := configMap("repeats")
		for range 3 {
			rec.Eventf(cm, nil, corev1.EventTypeWarning, "RemoteError", "Sync", "the API answered %d", 503)
		}
		rec.Eventf(cm, nil, corev1.EventTypeNormal, "Synced", "Sync", "in sync")

		Eventually(func(g Gomega) {
			evs := eventsOf(g, cm.Name)
			g.Expect(evs).To(HaveLen(2))
			g.Expect(evs).To(ContainElement(And(
				HaveField("Type", corev1.EventTypeWarning), HaveField("Reason", "RemoteError"), HaveField("Action", "Sync"),
				HaveField("Note", "the API answered 503"), HaveField("ReportingController", "segment-operator"),
				HaveField("ReportingInstance", HavePrefix("segment-operator-")),
				HaveField("Regarding.Kind", "ConfigMap"), HaveField("Regarding.Name", cm.Name), HaveField("Regarding.UID", cm.UID),
				HaveField("Series", And(Not(BeNil()), HaveField("Count", int32(3)))))))
			g.Expect(evs).To(ContainElement(And(HaveField("Reason", "Synced"), HaveField("Series", BeNil()))))
		}).WithTimeout(timeout).Should(Succeed())
	})

	It("cuts a note to the 1,024 bytes the API server takes", func() {
		cm := configMap("long")
		rec.Eventf(cm, nil, corev1.EventTypeWarning, "InvalidSpec", "Sync", "%s", strings.Repeat("x", 5000))
		Eventually(func(g Gomega) {
			evs := eventsOf(g, cm.Name)
			g.Expect(evs).To(HaveLen(1))
			g.Expect(evs[0].Note).To(HaveLen(maxNote))
		}).WithTimeout(timeout).Should(Succeed())
	})
})

func configMap(name string) *corev1.ConfigMap {
	cm, err := admin.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return cm
}

func eventsOf(g Gomega, name string) []eventsv1.Event {
	list, err := admin.EventsV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=" + name})
	g.Expect(err).NotTo(HaveOccurred())
	return list.Items
}
