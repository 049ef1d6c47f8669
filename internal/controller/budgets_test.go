package controller_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// A tenant with the built-in edit role in its own namespace (Segments, Secrets and
// ConfigMaps there) tries to make the manager read, hold or keep more than its budgets.
var _ = Describe("Tenancy: budgets", func() {
	var (
		ns     string
		tenant client.Client
	)
	BeforeEach(func() {
		ns = freshNamespace("hostile-")
		tenant = newTenant(ns)
	})
	AfterEach(func() { cleanUp(ns) })

	It("reads member sources only up to the Segment's cap, however many and large they are", func() {
		// The attack as found: 8 ConfigMaps of 2 gzip keys of 120,000 distinct IDs, and
		// Segments naming all 16 keys, on a Secret of the tenant's (nothing is called before
		// the members are known, so any token does).
		Expect(tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "own", Namespace: ns,
			Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
			StringData: map[string]string{"token": "anything", "apiURL": sim2URL}})).To(Succeed())
		var from []usersv1alpha1.MembersSource
		for c := range 8 {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("crm-%d", c), Namespace: ns,
				Labels: map[string]string{usersv1alpha1.MembersLabel: "true"}}, BinaryData: map[string][]byte{}}
			for k := range 2 {
				key := fmt.Sprintf("ids-%d.gz", k)
				cm.BinaryData[key] = gzippedIDs(fmt.Sprintf("c%dk%du", c, k), usersv1alpha1.MaxMembers)
				from = append(from, usersv1alpha1.MembersSource{ConfigMap: cm.Name, Key: key})
			}
			Expect(tenant.Create(ctx, cm)).To(Succeed())
		}
		calls := sim2.Counts().Requests

		peak := heapPeak()
		var segs []*usersv1alpha1.Segment
		for i := range 4 {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("hoard-%d", i), Namespace: ns},
				Spec: usersv1alpha1.SegmentSpec{CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "own"}, MembersFrom: from}}
			Expect(tenant.Create(ctx, seg)).To(Succeed())
			segs = append(segs, seg)
		}
		for _, seg := range segs {
			waitReason(seg, usersv1alpha1.ReasonMembersSourceError)
			Expect(readyCondition(get(seg)).Message).To(ContainSubstring(fmt.Sprintf(
				"name more than %d members together (reading stopped at ConfigMap \"crm-0\", key \"ids-1.gz\", source 2 of 16)",
				usersv1alpha1.MaxMembers)))
		}
		grown := peak()
		GinkgoWriter.Printf("heap grew by %d MiB at most while 4 Segments named 16 keys of 120,000 IDs\n", grown>>20)
		// Read whole (before the budgets), the heap went at least 373 MiB up, and this spec
		// timed out first; stopping at the second key, two Segments read at once, about 60.
		Expect(grown).To(BeNumerically("<", 128<<20), "the heap grew by %d MiB", grown>>20)
		Expect(sim2.Counts().Requests).To(Equal(calls), "a call made for a Segment whose members are not known")
	})

	It("keeps no more member records for the namespace than it may, and sends nothing it could not record", func() {
		Expect(tenant.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "crm", Namespace: ns,
			Labels: map[string]string{usersv1alpha1.MembersLabel: "true"}},
			BinaryData: map[string][]byte{"ids.gz": gzippedIDs("crm", 100_000)}})).To(Succeed())
		spec := usersv1alpha1.SegmentSpec{MembersFrom: []usersv1alpha1.MembersSource{{ConfigMap: "crm", Key: "ids.gz"}}}
		first := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "first", Namespace: ns}, Spec: spec}
		Expect(tenant.Create(ctx, first)).To(Succeed())
		Expect(waitReady(first).Status.MemberRecord.ConfigMap).NotTo(BeEmpty())

		adds := sim.Counts().Requests[simulator.EndpointAdd]
		second := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "second", Namespace: ns}, Spec: spec}
		Expect(tenant.Create(ctx, second)).To(Succeed())
		waitReason(second, usersv1alpha1.ReasonMemberRecordQuotaExceeded)
		Expect(readyCondition(get(second)).Message).To(ContainSubstring(
			fmt.Sprintf("may take at most %d bytes (--max-member-record-bytes-per-namespace)", recordBytesPerNamespace)))
		Consistently(func() int64 { return sim.Counts().Requests[simulator.EndpointAdd] - adds }, driftInterval, poll).Should(BeZero(),
			"members sent that could not be recorded")
		var records corev1.ConfigMapList
		Expect(k8sClient.List(ctx, &records, client.InNamespace(managerNamespace),
			client.MatchingLabels{usersv1alpha1.MemberRecordLabel: "true"})).To(Succeed())
		mine := 0
		for _, r := range records.Items {
			if strings.HasPrefix(r.Annotations["users.chatbot.com/segment"], ns+"/") {
				mine++
			}
		}
		Expect(mine).To(Equal(1), "record ConfigMaps of the namespace")

		By("its first Segment gone, the second goes on")
		Expect(tenant.Delete(ctx, first)).To(Succeed())
		waitGone(first)
		Expect(waitReady(second).Status.MemberRecord.Added).To(BeEquivalentTo(100_000))
	})

	It("counts every account its Segments use, those they own segments in included", func() {
		// Segments that own a segment in an account each, as a restarted manager finds them
		// (staged as the admin: a tenant cannot write status), on tokens of the tenant's; one
		// of them suspended, so it makes no call.
		for i := range accountsPerTenant {
			secret := fmt.Sprintf("held-%d", i)
			Expect(tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: ns,
				Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
				StringData: map[string]string{"token": secret, "apiURL": sim2URL}})).To(Succeed())
			seg := stagedSegment(ns, secret, usersv1alpha1.SegmentSpec{DeletionPolicy: usersv1alpha1.DeletionPolicyOrphan,
				CredentialsRef: &usersv1alpha1.CredentialsReference{Name: secret}}, func(st *usersv1alpha1.SegmentStatus) {
				st.ID = "owned-" + secret
				st.Ownership = &usersv1alpha1.SegmentOwnership{ID: st.ID,
					Account: remote.Credentials{BaseURL: sim2URL, Token: secret}.AccountID()}
			})
			if i == 0 {
				continue // suspended: it uses its account no more, but holds a segment there
			}
			update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
			waitReason(seg, usersv1alpha1.ReasonUnauthorized) // the account is used: its token is not sim2's
		}
		Expect(tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Namespace: ns,
			Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
			StringData: map[string]string{"token": sim2Token, "apiURL": sim2URL}})).To(Succeed())
		creates := sim2.Counts().Requests[simulator.EndpointCreate]
		fresh := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Namespace: ns},
			Spec: usersv1alpha1.SegmentSpec{Members: []string{"u1"}, CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "fresh"}}}
		Expect(tenant.Create(ctx, fresh)).To(Succeed())
		waitReason(fresh, usersv1alpha1.ReasonCredentialsError)
		Expect(readyCondition(get(fresh)).Message).To(ContainSubstring(fmt.Sprintf("already uses %d ChatBot accounts", accountsPerTenant)))
		Expect(sim2.Counts().Requests[simulator.EndpointCreate]).To(Equal(creates))
	})
})

// newTenant returns a client for a user with what the built-in edit role grants in ns of
// Segments, Secrets and ConfigMaps, and nothing elsewhere.
func newTenant(ns string) client.Client {
	name := "tenant-" + ns
	user, err := testEnv.AddUser(envtest.User{Name: name}, nil)
	Expect(err).NotTo(HaveOccurred())
	c, err := client.New(user.Config(), client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())
	bindEditor(ns, name)
	bindWriter(ns, name, "secrets", "configmaps")
	return c
}

// gzippedIDs returns n IDs made from prefix, one per line, gzip-compressed.
func gzippedIDs(prefix string, n int) []byte {
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	for i := range n {
		_, _ = fmt.Fprintf(z, "%s%06d\n", prefix, i)
	}
	Expect(z.Close()).To(Succeed())
	return b.Bytes()
}

// heapPeak starts watching the heap of this process (the manager's, the test's and the
// simulators'), from after a collection, and returns a function that stops watching and
// says how far above the start it went: the bytes of live and not yet collected objects.
func heapPeak() func() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		return max(peak.Load(), base) - base
	}
}
