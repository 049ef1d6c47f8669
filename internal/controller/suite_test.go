package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
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
	"github.com/segment-operator/segment-operator/internal/metrics"
	"github.com/segment-operator/segment-operator/internal/recorder"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/test/localenv"
)

// The suite runs one control plane (kube-apiserver + etcd), one simulator and one manager
// for every spec; specs work in namespaces of their own and run one at a time.
const (
	simToken      = "suite-token"
	driftInterval = 2 * time.Second
	// Of the manager's 4 workers, one account's Segments may hold 2.
	accountShare = 2
	// accountsPerTenant is --max-accounts-per-namespace.
	accountsPerTenant = 4
	// recordBytesPerNamespace is --max-member-record-bytes-per-namespace.
	recordBytesPerNamespace = 1 << 20
)

var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	sim       *simulator.Server
	simURL    string

	// managerToken is the token the manager's default credentials hold; specs change it.
	tokenMu      sync.Mutex
	managerToken = simToken

	// sim2 is a second ChatBot account, reached through a credentials Secret.
	sim2    *simulator.Server
	sim2URL string

	managerClient *flakyClient

	// notFoundURL answers 404 to everything, like a base URL with a wrong path.
	notFoundURL  string
	notFoundHits atomic.Int64

	// stuckURL holds every call until stuckRelease is closed (releaseStuck), then answers
	// 404, like an API that stopped answering.
	stuckURL                        string
	stuckRelease                    chan struct{}
	releaseStuck                    = sync.OnceFunc(func() { close(stuckRelease) })
	stuckInFlight, stuckMaxInFlight atomic.Int64

	// accounts are the manager's.
	accounts *remote.Accounts

	// liarURL is an API a tenant runs (or an allowed URL answers as it likes): every create
	// makes liarID, and every listing shows liarID with the name last created.
	liarURL  string
	liarID   atomic.Value // string
	liarName atomic.Value // string
)

const sim2Token = "second-account-token"

// managerNamespace is the manager's own, where it keeps large member records.
const managerNamespace = "segment-operator-system"

// flakyClient is the manager's client with one injectable failure: while failIDWrites is
// set, every status write that records a remote ID fails, as if the manager died between
// the create call and the status write.
type flakyClient struct {
	client.Client
	failIDWrites atomic.Bool
	// statusWrites counts status patches sent, no-ops included (the API server does not
	// bump resourceVersion for those, so only the client can see them).
	statusWrites atomic.Int64
	// failedIDWrites counts the status writes failed by failIDWrites.
	failedIDWrites atomic.Int64
	// segmentWrites counts the writes sent for each Segment, metadata and status alike.
	segmentWrites sync.Map // types.NamespacedName -> *atomic.Int64
}

// writesTo returns how many writes the manager has sent for the Segment.
func (f *flakyClient) writesTo(seg *usersv1alpha1.Segment) int64 {
	if n, ok := f.segmentWrites.Load(client.ObjectKeyFromObject(seg)); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

func (f *flakyClient) countWrite(obj client.Object) {
	if isSegment(obj) {
		n, _ := f.segmentWrites.LoadOrStore(client.ObjectKeyFromObject(obj), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
}

func (f *flakyClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	f.countWrite(obj)
	return f.Client.Patch(ctx, obj, patch, opts...)
}

func (f *flakyClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	f.countWrite(obj)
	return f.Client.Update(ctx, obj, opts...)
}

func (f *flakyClient) Status() client.SubResourceWriter {
	return &flakyStatus{SubResourceWriter: f.Client.Status(), f: f}
}

type flakyStatus struct {
	client.SubResourceWriter
	f *flakyClient
}

func (s *flakyStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.f.statusWrites.Add(1)
	s.f.countWrite(obj)
	if s.f.failIDWrites.Load() && isSegment(obj) && recordsID(obj, patch) {
		s.f.failedIDWrites.Add(1)
		return errors.New("injected failure: status write lost after create")
	}
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// isSegment: obj is a Segment, whole or its metadata (as the status writer sends it).
func isSegment(obj client.Object) bool {
	if _, ok := obj.(*usersv1alpha1.Segment); ok {
		return true
	}
	m, ok := obj.(*metav1.PartialObjectMetadata)
	return ok && m.Kind == "Segment"
}

// recordsID: the status patch writes status.id.
func recordsID(obj client.Object, patch client.Patch) bool {
	data, err := patch.Data(obj)
	if err != nil {
		return false
	}
	var sent struct {
		Status struct {
			ID string `json:"id"`
		} `json:"status"`
	}
	return json.Unmarshal(data, &sent) == nil && sent.Status.ID != ""
}

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.TODO())

	Expect(usersv1alpha1.AddToScheme(scheme.Scheme)).To(Succeed())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: envtestAssets(),
	}
	// Said, not left to envtest's default: the tenancy specs act as users the API server
	// authorizes by RBAC alone.
	testEnv.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}})).To(Succeed())
	// As the install does: Segments are born with the finalizer.
	Expect(localenv.InstallAdmission(ctx, k8sClient, filepath.Join("..", ".."))).To(Succeed())

	sim, err = simulator.New(simulator.Options{Token: simToken})
	Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(sim)
	DeferCleanup(srv.Close)
	simURL = srv.URL

	sim2, err = simulator.New(simulator.Options{Token: sim2Token})
	Expect(err).NotTo(HaveOccurred())
	srv2 := httptest.NewServer(sim2)
	DeferCleanup(srv2.Close)
	sim2URL = srv2.URL

	srv404 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		notFoundHits.Add(1)
		http.NotFound(w, nil)
	}))
	DeferCleanup(srv404.Close)
	notFoundURL = srv404.URL + "/v9"

	stuckRelease = make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := stuckInFlight.Add(1)
		defer stuckInFlight.Add(-1)
		for m := stuckMaxInFlight.Load(); n > m; m = stuckMaxInFlight.Load() {
			if stuckMaxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-stuckRelease:
		case <-r.Context().Done():
		}
		http.NotFound(w, nil)
	}))
	DeferCleanup(stuck.Close)
	DeferCleanup(func() { releaseStuck() })
	stuckURL = stuck.URL

	liarID.Store("")
	liarName.Store("")
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet:
			_, _ = fmt.Fprintf(w, `[{"id":%q,"name":%q,"users":0,"createdAt":"2026-01-01 00:00:00.000Z"}]`, liarID.Load(), liarName.Load())
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/users/segments"):
			var body struct{ Name string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			liarName.Store(body.Name)
			_, _ = fmt.Fprintf(w, `{"id":%q,"timestamp":%q,"status":{"code":200,"type":"success"}}`,
				liarID.Load(), time.Now().UTC().Format(time.RFC3339Nano))
		default:
			_, _ = fmt.Fprint(w, `{"status":{"code":200,"type":"success"}}`)
		}
	}))
	DeferCleanup(liar.Close)
	liarURL = liar.URL

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controller.CacheOptions(credentials.SecretScope{All: true}, nil),
	})
	Expect(err).NotTo(HaveOccurred())
	// A client-side rate limit, as in production, so that calls wait for it as they do there
	// (and identical member sets may share add-members calls).
	accounts = remote.NewAccounts(remote.AccountOptions{QPS: 50, Burst: 5, Share: accountShare, PerTenant: accountsPerTenant,
		Held: credentials.HeldAccounts(mgr.GetClient()), Observer: metrics.ObserveAPICall})
	Expect(metrics.Register(ctx, mgr.GetCache(), accounts, nil)).To(Succeed())
	managerClient = &flakyClient{Client: mgr.GetClient()}
	eventRecorder, err := recorder.ForManager(mgr, "segment-operator")
	Expect(err).NotTo(HaveOccurred())
	Expect((&controller.SegmentReconciler{
		Client:   managerClient,
		Recorder: eventRecorder,
		Accounts: accounts,
		DefaultCredentials: func() (remote.Credentials, error) {
			tokenMu.Lock()
			defer tokenMu.Unlock()
			return remote.Credentials{BaseURL: simURL, Token: managerToken}, nil
		},
		AllowedAPIURLs:          []string{sim2URL, notFoundURL, liarURL, stuckURL},
		SecretScope:             credentials.SecretScope{All: true},
		DriftInterval:           driftInterval,
		MaxConcurrentReconciles: 4,
		NamespaceShare:          accountShare,
		// A create another process made is resolved CreateTimeout (+5s of clock skew)
		// after its intent; pendingSegment stands in for such a process.
		CreateTimeout:         time.Second,
		MemberRecordNamespace: managerNamespace,
		// The records of a namespace may take 1 MiB: one of 100,000 members, not two.
		MemberRecordBytesPerNamespace: recordBytesPerNamespace,
		// Records of Segments gone are swept every second, from 5 seconds of age.
		RecordSweepInterval: time.Second,
		RecordSweepMinAge:   5 * time.Second,
	}).SetupWithManager(ctx, mgr)).To(Succeed())

	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// envtestAssets returns the directory of kube-apiserver and etcd: $KUBEBUILDER_ASSETS as
// `make test` sets it, or else what hack/envtest.sh builds (and caches) for this checkout.
func envtestAssets() string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	Expect(err).NotTo(HaveOccurred())
	dir, err := localenv.Assets(root)
	Expect(err).NotTo(HaveOccurred(), "hack/envtest.sh could not build the envtest control plane")
	return dir
}

func setManagerToken(token string) {
	tokenMu.Lock()
	defer tokenMu.Unlock()
	managerToken = token
}
