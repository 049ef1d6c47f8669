// Command manager runs the segment-operator: it reconciles Segment objects with ChatBot.com
// user segments.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/controller"
	"github.com/segment-operator/segment-operator/internal/credentials"
	"github.com/segment-operator/segment-operator/internal/logging"
	"github.com/segment-operator/segment-operator/internal/memberrecord"
	"github.com/segment-operator/segment-operator/internal/metrics"
	"github.com/segment-operator/segment-operator/internal/metricsauth"
	"github.com/segment-operator/segment-operator/internal/recorder"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/shard"
	"github.com/segment-operator/segment-operator/internal/sources"
	"github.com/segment-operator/segment-operator/internal/version"
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(usersv1alpha1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr, probeAddr  string
		pprofAddr               string
		secureMetrics, enableH2 bool
		leaderElect             bool
		apiURL, tokenFile       string
		allowedAPIURLs          string
		defaultCredsNamespaces  string
		namespaceCredentials    string
		driftInterval           time.Duration
		maxConcurrent, apiBurst int
		accountShare            int
		accountsPerNamespace    int
		apiQPS, kubeQPS         float64
		kubeBurst               int
		showVersion             bool
		recordNamespace         string
		recordBytes             = bytesFlag(memberrecord.DefaultBytesPerNamespace)
		sourceBytes             = bytesFlag(sources.DefaultSegmentBytes)
		parseBytes              bytesFlag // 0: twice sourceBytes
		memoryLimitRatio        float64
		watchSelector           string
		sweepInterval           time.Duration
		sweepMinAge             time.Duration
	)
	flag.BoolVar(&showVersion, "version", false, "Print the version and exit.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, e.g. :8443 (HTTPS) or :8080 (HTTP); 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, allowing only authenticated and authorized callers (TokenReview, SubjectAccessReview).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the liveness and readiness probes bind to.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "Address Go's pprof endpoints (/debug/pprof/) bind to, for profiling the manager; 0 disables them. "+
		"They are unauthenticated and show the process's memory: bind them to localhost (kubectl port-forward), never to a Service.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that only one replica reconciles at a time.")
	flag.BoolVar(&enableH2, "enable-http2", false, "Serve metrics over HTTP/2 too (off because of the HTTP/2 rapid-reset CVEs).")
	flag.StringVar(&apiURL, "chatbot-api-url", chatbot.DefaultBaseURL, "Base URL of the ChatBot API (the simulator's for tests and demos).")
	flag.StringVar(&allowedAPIURLs, "allowed-api-urls", "", "Comma-separated API base URLs that credentials Secrets may name under apiURL, besides --chatbot-api-url; * allows any.")
	flag.StringVar(&defaultCredsNamespaces, "default-credentials-namespaces", "", "Comma-separated namespaces whose Segments may use the manager's own token without spec.credentialsRef, besides those labelled users.chatbot.com/default-credentials=true; * allows every namespace.")
	flag.StringVar(&namespaceCredentials, "namespace-credentials", "*", "Where Segments may name a credentials Secret (spec.credentialsRef): * in every namespace (the manager needs cluster-wide access to Secrets: config/rbac/credentials_role.yaml), a comma-separated list of namespaces (access granted in each by a RoleBinding named segment-operator-credentials: config/rbac/credentials_namespaced_role.yaml), or none (it watches and reads no Secret, and needs no access to any).")
	flag.StringVar(&recordNamespace, "member-record-namespace", "", "The manager's own namespace, where it keeps the records of the members it added to segments too large to record in status (ConfigMaps; default: $POD_NAMESPACE, which the install sets, else the namespace of the kubeconfig's current context).")
	flag.Var(&recordBytes, "max-member-record-bytes-per-namespace", "Most bytes the member records of one namespace's Segments may take in the manager's namespace, where no ResourceQuota of theirs counts them (about 7 bytes a member added; 0: no bound). A Segment whose record would pass it gets MemberRecordQuotaExceeded, before any member is sent.")
	flag.Var(&sourceBytes, "max-member-source-bytes-per-segment", "Most bytes one Segment's spec.membersFrom sources may weigh in all: their IDs once decompressed, and 48 bytes more for each ID (what the manager holds of it); reading stops at the first key past it (MembersSourceError). The default holds 120,000 IDs of 64 characters.")
	flag.Var(&parseBytes, "max-member-source-bytes-at-once", "Most bytes of spec.membersFrom sources (weighed as above) the manager reads and holds at once, all Segments of all namespaces together; Segments wait for their share. At least --max-member-source-bytes-per-segment (0: twice it, 32Mi by default).")
	flag.StringVar(&tokenFile, "chatbot-api-token-file", "", "File holding the ChatBot Developer access token, re-read when it changes. Without it, $CHATBOT_API_TOKEN.")
	flag.DurationVar(&driftInterval, "drift-interval", 5*time.Minute, "How often each Segment is compared with the remote account; one listing per account serves all Segments in an interval.")
	flag.IntVar(&maxConcurrent, "max-concurrent-reconciles", 16, "How many Segments are reconciled at once (workers mostly wait on the API: each costs a goroutine).")
	flag.IntVar(&accountsPerNamespace, "max-accounts-per-namespace", 10, "How many ChatBot accounts (pairs of token and API URL) the Segments of one namespace may use within three drift intervals; a Secret rewritten with a further token gets CredentialsError (0: no bound).")
	flag.IntVar(&accountShare, "max-concurrent-reconciles-per-account", 0, "How many Segments of one ChatBot account, and of one namespace, are reconciled at once, so that a slow or busy account or tenant leaves workers to the others (0: half of --max-concurrent-reconciles, at least 1).")
	flag.Float64Var(&apiQPS, "chatbot-api-qps", 0, "Most ChatBot API calls per second per account (0: no client-side limit).")
	flag.IntVar(&apiBurst, "chatbot-api-burst", 10, "Most ChatBot API calls at once per account when --chatbot-api-qps is set.")
	flag.Float64Var(&kubeQPS, "kube-api-qps", 50, "Most Kubernetes API requests per second from the manager (status writes, finalizers, events).")
	flag.IntVar(&kubeBurst, "kube-api-burst", 100, "Most Kubernetes API requests at once from the manager.")
	flag.Float64Var(&memoryLimitRatio, "memory-limit-ratio", 0.9, "Fraction of the container's memory limit (read from its cgroup) that the Go runtime takes as its soft memory limit, collecting garbage harder as the heap nears it; between 0 (excluded) and 1. $GOMEMLIMIT, when set, is the limit instead (GOMEMLIMIT=off: none).")
	flag.StringVar(&watchSelector, "watch-label-selector", "", "Reconcile only the Segments whose labels match this label selector (Flux's sharding label: sharding.fluxcd.io/key=shard1); empty: every Segment. Each shard is one manager with its own leader election; see docs/operations/sharding.md.")
	flag.DurationVar(&sweepInterval, "member-record-sweep-interval", memberrecord.DefaultSweepInterval, "How often the leader deletes the member records whose Segment is gone, and, with --watch-label-selector, the claim Leases no Segment holds.")
	flag.DurationVar(&sweepMinAge, "member-record-sweep-min-age", memberrecord.DefaultSweepMinAge, "Only member records older than this are swept (a record is written just before its Segment's status names it, and may be another shard's Segment's, not yet in this manager's cache); at least 1s.")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	if showVersion {
		fmt.Println("segment-operator", version.Get())
		return
	}
	ctrl.SetLogger(logging.New(&opts))

	if !(memoryLimitRatio > 0 && memoryLimitRatio <= 1) {
		setupLog.Error(fmt.Errorf("--memory-limit-ratio must be above 0 and at most 1, got %v", memoryLimitRatio), "bad flag")
		os.Exit(2)
	}
	if limit, err := setGoMemoryLimit(memoryLimitRatio, memlimit.FromCgroup); err != nil {
		setupLog.Error(err, "Go memory limit not set: the garbage collector does not follow the container's memory limit")
	} else {
		setupLog.Info("Go memory limit", limit.logValues()...)
	}

	scope, err := credentials.ParseSecretScope(namespaceCredentials)
	if err != nil {
		setupLog.Error(err, "bad flag")
		os.Exit(2)
	}
	sh, err := shard.Parse(watchSelector)
	if err != nil {
		setupLog.Error(err, "bad flag")
		os.Exit(2)
	}
	if sweepInterval < time.Second || sweepMinAge < time.Second {
		// A record just written may belong to a Segment not yet in this manager's cache
		// (another shard's, just made): it must not be swept at once.
		setupLog.Error(fmt.Errorf("--member-record-sweep-interval and --member-record-sweep-min-age must be at least 1s"), "bad flag")
		os.Exit(2)
	}
	sourceLimits := sources.Limits{SegmentBytes: int64(sourceBytes), ParseBytes: int64(parseBytes)}.WithDefaults()
	if err := sourceLimits.Validate(); err != nil {
		setupLog.Error(err, "bad flag")
		os.Exit(2)
	}
	if err := run(runConfig{
		shard: sh, sweepInterval: sweepInterval, sweepMinAge: sweepMinAge,
		secretScope: scope, recordNamespace: recordNamespace, recordBytes: int64(recordBytes), sourceLimits: sourceLimits,
		metricsAddr: metricsAddr, probeAddr: probeAddr, pprofAddr: pprofAddr, secureMetrics: secureMetrics, enableH2: enableH2,
		leaderElect: leaderElect, driftInterval: driftInterval, maxConcurrent: maxConcurrent, accountShare: accountShare,
		accountsPerNamespace: accountsPerNamespace,
		apiQPS:               apiQPS, apiBurst: apiBurst, kubeQPS: float32(kubeQPS), kubeBurst: kubeBurst,
		creds:                        &remote.DefaultCredentials{BaseURL: apiURL, Token: os.Getenv("CHATBOT_API_TOKEN"), TokenFile: tokenFile},
		allowedAPIURLs:               splitList(allowedAPIURLs),
		defaultCredentialsNamespaces: splitList(defaultCredsNamespaces),
	}); err != nil {
		setupLog.Error(err, "manager stopped")
		os.Exit(1)
	}
}

type runConfig struct {
	metricsAddr, probeAddr  string
	pprofAddr               string
	secureMetrics, enableH2 bool
	leaderElect             bool
	driftInterval           time.Duration
	maxConcurrent, apiBurst int
	accountShare            int // 0: half of maxConcurrent
	accountsPerNamespace    int
	apiQPS                  float64
	kubeQPS                 float32
	kubeBurst               int
	creds                   *remote.DefaultCredentials
	allowedAPIURLs          []string
	// defaultCredentialsNamespaces may use the manager's own token, besides labelled ones.
	defaultCredentialsNamespaces []string
	secretScope                  credentials.SecretScope
	recordNamespace              string // "": $POD_NAMESPACE, or the kubeconfig context's
	recordBytes                  int64
	sourceLimits                 sources.Limits
	shard                        *shard.Shard // nil: every Segment
	sweepInterval, sweepMinAge   time.Duration
}

// bytesFlag is a flag of a number of bytes, written as a Kubernetes quantity: 16Mi,
// 8388608, 1G.
type bytesFlag int64

func (b *bytesFlag) String() string {
	return resource.NewQuantity(int64(*b), resource.BinarySI).String()
}

func (b *bytesFlag) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return err
	}
	if q.Sign() < 0 {
		return fmt.Errorf("%s is negative", s)
	}
	*b = bytesFlag(q.Value())
	return nil
}

// fromKubeconfig says that the namespace for member records is the kubeconfig's: the
// manager runs out of a cluster, in a namespace others may write.
const fromKubeconfig = "the kubeconfig's current context"

// recordNamespace returns the namespace where the manager keeps member records, and where
// it comes from: the flag, $POD_NAMESPACE (which the install sets), or, out of a cluster,
// the namespace of the kubeconfig's current context (the one kubectl uses).
func recordNamespace(flagged string) (ns, from string, err error) {
	if flagged != "" {
		return flagged, "--member-record-namespace", nil
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns, "$POD_NAMESPACE", nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f := flag.Lookup(config.KubeconfigFlagName); f != nil {
		rules.ExplicitPath = f.Value.String()
	}
	ns, _, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).Namespace()
	return ns, fromKubeconfig, err
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func run(cfg runConfig) error {
	if cfg.driftInterval < time.Second {
		return fmt.Errorf("--drift-interval must be at least 1s, got %s", cfg.driftInterval)
	}
	setupLog.Info("starting segment-operator", "version", version.Get(), "chatbotAPI", chatbot.RedactURL(cfg.creds.BaseURL),
		"driftInterval", cfg.driftInterval.String(), "watchLabelSelector", cfg.shard.String())
	// Segments may name their own credentials; without default ones, only those work.
	// The token itself is never logged.
	if _, err := cfg.creds.Get(); err != nil {
		setupLog.Info("no default ChatBot credentials: only Segments with spec.credentialsRef will work", "reason", err.Error())
	}

	var tlsOpts []func(*tls.Config)
	if !cfg.enableH2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: cfg.metricsAddr, SecureServing: cfg.secureMetrics, TLSOpts: tlsOpts}
	if cfg.secureMetrics {
		metricsOpts.FilterProvider = metricsauth.Filter
	}

	recordNS, from, err := recordNamespace(cfg.recordNamespace)
	if err != nil {
		return fmt.Errorf("find the namespace for member records (set --member-record-namespace): %w", err)
	}
	setupLog.Info("member records of large segments are kept in namespace "+recordNS, "from", from,
		"maxBytesPerNamespace", cfg.recordBytes)
	if from == fromKubeconfig {
		setupLog.Info("out of a cluster: whoever may write ConfigMaps in namespace " + recordNS + " may change the records " +
			"kept there; give the manager a namespace of its own with --member-record-namespace")
	}

	restCfg := ctrl.GetConfigOrDie()
	restCfg.QPS, restCfg.Burst = cfg.kubeQPS, cfg.kubeBurst
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: cfg.probeAddr,
		PprofBindAddress:       cfg.pprofAddr,
		LeaderElection:         cfg.leaderElect,
		LeaderElectionID:       cfg.shard.LeaderElectionID("segment-operator.users.chatbot.com"),
		// The process ends as soon as the manager stops, so the lease can be let go at once:
		// the standby takes over without waiting out the lease after a clean shutdown.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controller.CacheOptions(cfg.secretScope, cfg.shard),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	// An account unused for three drift intervals has no Segments left (every Segment asks
	// for its account once per interval): forget its client and listing.
	share := cfg.accountShare
	if share <= 0 {
		share = max(1, cfg.maxConcurrent/2)
	}
	accounts := remote.NewAccounts(remote.AccountOptions{QPS: cfg.apiQPS, Burst: cfg.apiBurst, Share: share,
		PerTenant: cfg.accountsPerNamespace, Held: credentials.HeldAccounts(mgr.GetClient()),
		Observer: metrics.ObserveAPICall, Forgotten: metrics.ForgetAccount, IdleTTL: 3 * cfg.driftInterval})
	ctx := ctrl.SetupSignalHandler()
	if err := metrics.Register(ctx, mgr.GetCache(), accounts, cfg.shard.Owns); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	events, err := recorder.ForManager(mgr, "segment-operator")
	if err != nil {
		return fmt.Errorf("set up the Event recorder: %w", err)
	}
	if err := (&controller.SegmentReconciler{
		Client:                        mgr.GetClient(),
		Recorder:                      events,
		Accounts:                      accounts,
		DefaultCredentials:            cfg.creds.Get,
		AllowedAPIURLs:                cfg.allowedAPIURLs,
		DefaultCredentialsNamespaces:  cfg.defaultCredentialsNamespaces,
		SecretScope:                   cfg.secretScope,
		DriftInterval:                 cfg.driftInterval,
		MaxConcurrentReconciles:       cfg.maxConcurrent,
		NamespaceShare:                share,
		MemberRecordNamespace:         recordNS,
		MemberRecordBytesPerNamespace: cfg.recordBytes,
		MemberSources:                 cfg.sourceLimits,
		RecordSweepInterval:           cfg.sweepInterval,
		RecordSweepMinAge:             cfg.sweepMinAge,
		Shard:                         cfg.shard,
	}).SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("set up Segment controller: %w", err)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
