package controller_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

// A tenant is a user bound only to the shipped segment-editor-role in their own namespace
// (the API server authorizes with RBAC). Everything they can write (spec, annotations,
// finalizers) is tried against a Segment of another namespace that manages a segment on
// the manager's token: each try ends in Conflict or no effect, and the simulator shows no
// write to the victim's segment.
var _ = Describe("Tenancy: a Segment editor cannot reach another namespace's segment", Ordered, func() {
	var (
		victimNS, tenantNS string
		tenant             client.Client
		victim             *usersv1alpha1.Segment
		victimID           string
	)

	BeforeAll(func() {
		tenantNS = freshNamespace("tenant-")
		name := "tenant-" + tenantNS
		user, err := testEnv.AddUser(envtest.User{Name: name}, nil)
		Expect(err).NotTo(HaveOccurred())
		tenant, err = client.New(user.Config(), client.Options{Scheme: scheme.Scheme})
		Expect(err).NotTo(HaveOccurred())
		bindEditor(tenantNS, name)
	})
	AfterAll(func() { cleanUp(tenantNS) })

	BeforeEach(func() {
		victimNS = freshNamespace("victim-")
		victim = waitReady(create(victimNS, "crown-jewels", usersv1alpha1.SegmentSpec{Name: "Crown jewels", Members: []string{"v1"}}))
		victimID = victim.Status.ID
	})
	AfterEach(func() {
		Expect(remoteSegment(victimID)).To(And(HaveField("Name", "Crown jewels"), HaveField("Members", ConsistOf("v1"))))
		Expect(readyCondition(get(victim)).Status).To(Equal(metav1.ConditionTrue))
		cleanUp(victimNS)
		cleanUp(tenantNS)
	})

	// untouched expects no remote write at all while the attack runs its course (specs run
	// one at a time, so any write would be the attacker's).
	untouched := func(attack func()) {
		writes := sim.Counts().Writes()
		attack()
		Consistently(func() int64 { return sim.Counts().Writes() - writes }, driftInterval, poll).Should(BeZero())
		Expect(remoteSegment(victimID)).To(And(HaveField("Name", "Crown jewels"), HaveField("Members", ConsistOf("v1"))))
	}
	tenantCreate := func(seg *usersv1alpha1.Segment) *usersv1alpha1.Segment {
		seg.Namespace = tenantNS
		ExpectWithOffset(1, tenant.Create(ctx, seg)).To(Succeed())
		return seg
	}
	tenantUpdate := func(seg *usersv1alpha1.Segment, change func(*usersv1alpha1.Segment)) {
		EventuallyWithOffset(1, func() error {
			s := &usersv1alpha1.Segment{}
			if err := tenant.Get(ctx, client.ObjectKeyFromObject(seg), s); err != nil {
				return err
			}
			change(s)
			return tenant.Update(ctx, s)
		}, timeout, poll).Should(Succeed())
	}
	tenantDelete := func(seg *usersv1alpha1.Segment) {
		ExpectWithOffset(1, tenant.Delete(ctx, seg)).To(Succeed())
		waitGone(seg)
	}

	It("cannot grant its namespace the manager's own credentials", func() {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenantNS}}
		err := tenant.Patch(ctx, n, client.RawPatch(types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"`+usersv1alpha1.DefaultCredentialsLabel+`":"true"}}}`)))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "labelling the namespace: %v", err)
	})

	It("cannot write status, where ownership is recorded", func() {
		seg := tenantCreate(&usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "forger"},
			Spec: usersv1alpha1.SegmentSpec{Suspend: true}})
		seg.Status.ID = victimID
		seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{ID: victimID}
		Expect(apierrors.IsForbidden(tenant.Status().Update(ctx, seg))).To(BeTrue())
		err := tenant.Status().Patch(ctx, seg, client.RawPatch("application/merge-patch+json",
			[]byte(`{"status":{"ownership":{"id":"`+victimID+`"}}}`)))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "status patch: %v", err)
	})

	It("gets Conflict, not the segment, by ObserveOnly, a hand-added finalizer, then Manage; and deleting deletes nothing", func() {
		untouched(func() {
			seg := tenantCreate(&usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "watcher"},
				Spec: usersv1alpha1.SegmentSpec{ID: victimID, Name: "Pwned", Members: []string{"evil"},
					ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly}})
			waitReason(seg, usersv1alpha1.ReasonDriftDetected)
			Expect(get(seg).Status.ID).To(Equal(victimID), "observing shows the segment")
			Expect(get(seg).OwnedID()).To(BeEmpty(), "observing owns nothing")

			tenantUpdate(seg, func(s *usersv1alpha1.Segment) {
				controllerutil.AddFinalizer(s, usersv1alpha1.SegmentFinalizer)
				s.Spec.ManagementPolicy = usersv1alpha1.ManagementPolicyManage
			})
			waitReason(seg, usersv1alpha1.ReasonConflict)
			msg := readyCondition(get(seg)).Message
			Expect(msg).To(ContainSubstring("a Segment in another namespace"))
			Expect(msg).NotTo(Or(ContainSubstring(victimNS), ContainSubstring("crown-jewels")), "the refusal names the owner")
			tenantDelete(seg)
		})
	})

	It("gets Conflict for spec.id of another namespace's segment, and deleting deletes nothing", func() {
		untouched(func() {
			seg := tenantCreate(&usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "hijack"},
				Spec: usersv1alpha1.SegmentSpec{ID: victimID, Name: "Pwned", Members: []string{"evil"}}})
			waitReason(seg, usersv1alpha1.ReasonConflict)
			Expect(readyCondition(get(seg)).Message).NotTo(ContainSubstring(victimNS))
			tenantDelete(seg)
		})
	})

	It("deletes nothing through a forged create-pending annotation and a hand-added finalizer", func() {
		uiMade := sim.Create("Made in the ChatBot UI")
		forged, _ := json.Marshal(map[string]any{"at": time.Now().Add(-time.Hour).UTC(), "name": "Made in the ChatBot UI"})
		untouched(func() {
			seg := tenantCreate(&usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "forged-intent",
				Finalizers:  []string{usersv1alpha1.SegmentFinalizer},
				Annotations: map[string]string{usersv1alpha1.AnnotationCreatePending: string(forged)}},
				Spec: usersv1alpha1.SegmentSpec{Name: "Made in the ChatBot UI", Suspend: true}})
			waitSuspended(seg)
			tenantDelete(seg)
		})
		Expect(remoteSegment(uiMade).Name).To(Equal("Made in the ChatBot UI"))

		By("deleting only the segment its own create made, when it manages")
		seg := tenantCreate(&usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "forged-intent-2",
			Finalizers:  []string{usersv1alpha1.SegmentFinalizer},
			Annotations: map[string]string{usersv1alpha1.AnnotationCreatePending: string(forged)}},
			Spec: usersv1alpha1.SegmentSpec{Name: "Made in the ChatBot UI"}})
		own := waitReady(seg).Status.ID
		Expect(own).NotTo(Equal(uiMade))
		tenantDelete(seg)
		_, exists := sim.Segment(own)
		Expect(exists).To(BeFalse())
		Expect(remoteSegment(uiMade).Name).To(Equal("Made in the ChatBot UI"))
		Expect(sim.Delete(uiMade)).To(BeTrue())
	})

	It("deletes nothing through a hand-added finalizer on a Segment that owns nothing", func() {
		deletes := sim.Counts().Requests[simulator.EndpointDelete]
		seg := tenantCreate(&usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "finalizer-only",
			Finalizers: []string{usersv1alpha1.SegmentFinalizer}},
			Spec: usersv1alpha1.SegmentSpec{ID: victimID, ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly,
				DeletionPolicy: usersv1alpha1.DeletionPolicyDelete}})
		waitReason(seg, usersv1alpha1.ReasonDriftDetected)
		tenantUpdate(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = true })
		tenantDelete(seg)
		Expect(sim.Counts().Requests[simulator.EndpointDelete]).To(Equal(deletes))
	})
})

// bindEditor binds user to the shipped segment-editor-role in ns, and nothing else.
func bindEditor(ns, user string) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "segment_editor_role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.ClusterRole{}
	Expect(yaml.Unmarshal(raw, role)).To(Succeed())
	if err := k8sClient.Create(ctx, role); !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant-edits-segments", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user}},
	})).To(Succeed())
}

// A tenant who may also write Secrets in its namespace (as the built-in edit role may)
// rewrites its credentials Secret's token again and again: each token is an account to the
// manager, with a client and a listing, so the manager keeps no more than
// --max-accounts-per-namespace of them for the namespace, and the Segment says why it stops.
var _ = Describe("Tenancy: rewriting a Secret's token", func() {
	It("makes the manager keep no more accounts than the namespace may use", func() {
		ns := freshNamespace("rotator-")
		DeferCleanup(cleanUp, ns)
		tenant := newTenant(ns)

		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns, Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
			StringData: map[string]string{"token": "wrong-0", "apiURL": sim2URL},
		}
		Expect(tenant.Create(ctx, secret)).To(Succeed())
		seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "rotating", Namespace: ns},
			Spec: usersv1alpha1.SegmentSpec{Members: []string{"u1"}, CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "creds"}}}
		Expect(tenant.Create(ctx, seg)).To(Succeed())
		waitReason(seg, usersv1alpha1.ReasonUnauthorized)
		before := len(accounts.All())

		rewrite := func(token string) {
			Eventually(func() error {
				s := &corev1.Secret{}
				if err := tenant.Get(ctx, client.ObjectKeyFromObject(secret), s); err != nil {
					return err
				}
				s.Data["token"] = []byte(token)
				return tenant.Update(ctx, s)
			}, timeout, poll).Should(Succeed())
		}
		for i := 1; i < accountsPerTenant; i++ {
			rewrite(fmt.Sprintf("wrong-%d", i))
			Eventually(func() int { return len(accounts.All()) }, timeout, poll).Should(Equal(before+i),
				"the manager made no account for token %d", i)
		}
		for i := accountsPerTenant; i < 3*accountsPerTenant; i++ {
			rewrite(fmt.Sprintf("wrong-%d", i))
		}
		waitReason(seg, usersv1alpha1.ReasonCredentialsError)
		Expect(readyCondition(get(seg)).Message).To(ContainSubstring(
			fmt.Sprintf("already uses %d ChatBot accounts", accountsPerTenant)))
		Consistently(func() int { return len(accounts.All()) }, 2*driftInterval, poll).Should(Equal(before+accountsPerTenant-1),
			"the manager kept an account per token written")

		rewrite("wrong-1") // one it has: the bound does not stand in the way
		waitReason(seg, usersv1alpha1.ReasonUnauthorized)
	})
})

// bindWriter lets user write the core resources (secrets, configmaps) in namespace ns, as
// the built-in edit role does.
func bindWriter(ns, user string, resources ...string) {
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "writer", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: resources,
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}},
	}
	Expect(k8sClient.Create(ctx, role)).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant-writes", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user}},
	})).To(Succeed())
}
