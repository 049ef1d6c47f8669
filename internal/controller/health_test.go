package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

// argoHealthScript is the Argo CD health check docs/user/gitops.md tells users to install.
var argoHealthScript = filepath.Join("..", "..", "config", "argocd", "segment-health.lua")

// These specs take Segments from the API server in each state and check what kstatus (which
// Flux's health checks use) and the Argo CD health check make of them.
var _ = Describe("GitOps health", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("health-") })
	AfterEach(func() { cleanUp(ns) })

	It("is InProgress and Progressing from creation until the operator writes, then Current and Healthy", func() {
		// The API server's answer to the create: no status write of the operator can be in it.
		seg := create(ns, "fresh", usersv1alpha1.SegmentSpec{Members: []string{"a"}})
		Expect(seg.Status.ObservedGeneration).To(BeEquivalentTo(-1), "status.observedGeneration is not defaulted")
		expectHealth(seg, kstatus.InProgressStatus, "Progressing", "Waiting for the operator to observe generation 1")

		seg = waitReady(seg)
		expectHealth(seg, kstatus.CurrentStatus, "Healthy", readyCondition(seg).Message)
	})

	It("is Failed and Degraded when stalled, and InProgress and Progressing as soon as the spec is fixed", func() {
		seg := create(ns, "wrong-secret", usersv1alpha1.SegmentSpec{
			CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "missing"}})
		seg = settled(seg, usersv1alpha1.ReasonCredentialsError)
		stalled := meta.FindStatusCondition(seg.Status.Conditions, usersv1alpha1.ConditionStalled)
		Expect(stalled).NotTo(BeNil())
		expectHealth(seg, kstatus.FailedStatus, "Degraded", stalled.Message)

		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "right", Namespace: ns, Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
			StringData: map[string]string{usersv1alpha1.CredentialsTokenKey: simToken, usersv1alpha1.CredentialsURLKey: simURL},
		})).To(Succeed())
		// The API server's answer to the update: the Stalled condition is still there, for
		// the generation before.
		fixed := updated(seg, func(s *usersv1alpha1.Segment) { s.Spec.CredentialsRef.Name = "right" })
		Expect(fixed.Generation).To(Equal(seg.Generation + 1))
		Expect(fixed.Status.ObservedGeneration).To(Equal(seg.Generation))
		Expect(meta.IsStatusConditionTrue(fixed.Status.Conditions, usersv1alpha1.ConditionStalled)).To(BeTrue())
		expectHealth(fixed, kstatus.InProgressStatus, "Progressing",
			fmt.Sprintf("Waiting for the operator to observe generation %d", fixed.Generation))

		seg = waitReady(seg)
		expectHealth(seg, kstatus.CurrentStatus, "Healthy", readyCondition(seg).Message)
	})

	It("is InProgress and Progressing while retrying", func() {
		Expect(sim.SetFaults(simulator.Faults{ErrorRate: 1, ErrorCode: 500})).To(Succeed())
		seg := settled(create(ns, "retrying", usersv1alpha1.SegmentSpec{}), usersv1alpha1.ReasonRemoteError)
		Expect(meta.IsStatusConditionTrue(seg.Status.Conditions, usersv1alpha1.ConditionReconciling)).To(BeTrue())
		expectHealth(seg, kstatus.InProgressStatus, "Progressing", readyCondition(seg).Message)
	})

	// kstatus falls back on the Ready condition when neither Reconciling nor Stalled is True
	// (checkReadyCondition in sigs.k8s.io/cli-utils/pkg/kstatus/status): Ready=False is
	// InProgress. A suspended Segment and an observe-only one with drift are settled (the
	// operator will not change them until the spec does), so the operator writes no Ready
	// for the first and Ready=True (reason DriftDetected) for the second: both are Current.
	It("is Current in kstatus and Suspended in Argo CD while suspended", func() {
		seg := create(ns, "paused", usersv1alpha1.SegmentSpec{Suspend: true})
		waitSuspended(seg)
		seg = get(seg)
		suspended := meta.FindStatusCondition(seg.Status.Conditions, usersv1alpha1.ConditionSuspended)
		Expect(suspended).NotTo(BeNil())
		expectHealth(seg, kstatus.CurrentStatus, "Suspended", suspended.Message)
	})

	It("is Current and Healthy under ObserveOnly, with drift or without", func() {
		id := sim.Create("Observed")
		drifting := settled(create(ns, "drifting", usersv1alpha1.SegmentSpec{ID: id, Name: "Wanted",
			ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly}), usersv1alpha1.ReasonDriftDetected)
		Expect(drifting.Status.Plan).NotTo(BeNil())
		expectHealth(drifting, kstatus.CurrentStatus, "Healthy", readyCondition(drifting).Message)

		matching := settled(create(ns, "matching", usersv1alpha1.SegmentSpec{ID: id, Name: "Observed",
			ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly}), usersv1alpha1.ReasonObserved)
		Expect(readyCondition(matching).Status).To(Equal(metav1.ConditionTrue))
		expectHealth(matching, kstatus.CurrentStatus, "Healthy", readyCondition(matching).Message)
		sim.Delete(id)
	})
})

// settled waits until the Segment's Ready condition has reason, in a status written for
// the current generation.
func settled(seg *usersv1alpha1.Segment, reason string) *usersv1alpha1.Segment {
	return waitReadyCondition(seg, func(g Gomega, c *metav1.Condition) { g.Expect(c.Reason).To(Equal(reason)) })
}

// updated changes the Segment and returns the API server's answer to the update.
func updated(seg *usersv1alpha1.Segment, change func(*usersv1alpha1.Segment)) *usersv1alpha1.Segment {
	var out *usersv1alpha1.Segment
	EventuallyWithOffset(1, func() error {
		out = get(seg)
		change(out)
		return k8sClient.Update(ctx, out)
	}, timeout, poll).Should(Succeed())
	return out
}

// expectHealth checks what kstatus and the Argo CD health check say of the Segment.
func expectHealth(seg *usersv1alpha1.Segment, kstatusWant kstatus.Status, argoWant, argoMessage string) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(seg)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{Object: obj}
	u.SetGroupVersionKind(usersv1alpha1.GroupVersion.WithKind("Segment"))

	res, err := kstatus.Compute(u)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, res.Status).To(Equal(kstatusWant), "kstatus: %s", res.Message)

	status, message, err := argoHealth(u.Object)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, status).To(Equal(argoWant), "Argo CD: %s", message)
	ExpectWithOffset(1, argoMessage).NotTo(BeEmpty())
	ExpectWithOffset(1, message).To(Equal(argoMessage))
}

// argoHealth runs the health check as Argo CD does (util/lua in argoproj/argo-cd): in
// gopher-lua with only the package, base and table libraries, for at most a second, the
// script being the body of a function with the object in the global obj. It returns the
// status and message of the table the script returns.
func argoHealth(obj map[string]any) (status, message string, err error) {
	script, err := os.ReadFile(argoHealthScript)
	if err != nil {
		return "", "", err
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return "", "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	value, err := luaValue(l, obj)
	if err != nil {
		return "", "", err
	}
	l.SetGlobal("obj", value)
	if err := l.DoString(string(script)); err != nil {
		return "", "", err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	s, ok := ret.RawGetString("status").(lua.LString)
	if !ok {
		return "", "", fmt.Errorf("status is %s, not a string", ret.RawGetString("status").Type())
	}
	switch s {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		return "", "", fmt.Errorf("status %q is not one Argo CD knows", s)
	}
	m, ok := ret.RawGetString("message").(lua.LString)
	if !ok {
		return "", "", fmt.Errorf("message is %s, not a string", ret.RawGetString("message").Type())
	}
	return string(s), string(m), nil
}

// luaValue converts a decoded JSON value to Lua, as Argo CD does: numbers become LNumber
// (a float), a json.Number a string, objects and arrays tables.
func luaValue(l *lua.LState, v any) (lua.LValue, error) {
	switch v := v.(type) {
	case nil:
		return lua.LNil, nil
	case bool:
		return lua.LBool(v), nil
	case string:
		return lua.LString(v), nil
	case json.Number:
		return lua.LString(v), nil
	case float64:
		return lua.LNumber(v), nil
	case int64:
		return lua.LNumber(v), nil
	case int:
		return lua.LNumber(v), nil
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			lv, err := luaValue(l, item)
			if err != nil {
				return nil, err
			}
			t.Append(lv)
		}
		return t, nil
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			lv, err := luaValue(l, item)
			if err != nil {
				return nil, err
			}
			t.RawSetString(key, lv)
		}
		return t, nil
	}
	return nil, fmt.Errorf("no Lua value for %T", v)
}

// TestArgoHealthOddInputs runs the Argo CD health check on objects the controller suite
// cannot make: no status, no conditions, no metadata.generation, numbers in other forms.
// Where kstatus is given, it is checked too (with the object decoded as Kubernetes decodes
// it: integers as int64); the Lua sees JSON numbers as floats.
func TestArgoHealthOddInputs(t *testing.T) {
	const ready = `{"type":"Ready","status":"True","reason":"Synced","message":"all good"}`
	for _, tc := range []struct {
		name          string
		object        string // metadata, spec and status of a Segment
		status, msg   string
		kstatusStatus kstatus.Status // "": not checked
	}{
		{name: "no status (a Segment made before the -1 default)",
			object: `"metadata":{"generation":1}`, status: "Progressing",
			msg: "Waiting for the operator to observe generation 1", kstatusStatus: kstatus.CurrentStatus},
		{name: "no status, no generation",
			object: `"metadata":{}`, status: "Progressing", msg: "Waiting for the operator", kstatusStatus: kstatus.CurrentStatus},
		{name: "no metadata at all",
			object: `"status":{"observedGeneration":-1}`, status: "Progressing", msg: "Waiting for the operator"},
		{name: "the -1 default",
			object: `"metadata":{"generation":1},"status":{"observedGeneration":-1,"remoteMembers":0}`, status: "Progressing",
			msg: "Waiting for the operator to observe generation 1", kstatusStatus: kstatus.InProgressStatus},
		{name: "observed, no conditions",
			object: `"metadata":{"generation":2},"status":{"observedGeneration":2}`, status: "Progressing",
			msg: "Waiting for the operator", kstatusStatus: kstatus.CurrentStatus},
		{name: "observed, null conditions",
			object: `"metadata":{"generation":2},"status":{"observedGeneration":2,"conditions":null}`, status: "Progressing",
			msg: "Waiting for the operator", kstatusStatus: kstatus.CurrentStatus},
		{name: "observed, empty conditions",
			object: `"metadata":{"generation":2},"status":{"observedGeneration":2,"conditions":[]}`, status: "Progressing",
			msg: "Waiting for the operator", kstatusStatus: kstatus.CurrentStatus},
		{name: "no observedGeneration: not taken as observed",
			object: `"metadata":{"generation":2},"status":{"conditions":[` + ready + `]}`, status: "Progressing",
			msg: "Waiting for the operator to observe generation 2", kstatusStatus: kstatus.CurrentStatus},
		{name: "no metadata.generation: the conditions decide",
			object: `"metadata":{},"status":{"observedGeneration":1,"conditions":[` + ready + `]}`, status: "Healthy",
			msg: "all good", kstatusStatus: kstatus.CurrentStatus},
		{name: "a large generation",
			object: `"metadata":{"generation":9007199254740},"status":{"observedGeneration":9007199254740,"conditions":[` + ready + `]}`,
			status: "Healthy", msg: "all good", kstatusStatus: kstatus.CurrentStatus},
		{name: "generations as strings (a json.Number in Argo CD)",
			object: `"metadata":{"generation":"3"},"status":{"observedGeneration":"3","conditions":[` + ready + `]}`,
			status: "Healthy", msg: "all good"},
		{name: "an older generation observed",
			object: `"metadata":{"generation":3},"status":{"observedGeneration":2,"conditions":[` + ready + `]}`, status: "Progressing",
			msg: "Waiting for the operator to observe generation 3", kstatusStatus: kstatus.InProgressStatus},
		{name: "spec.suspend without the condition yet",
			object: `"metadata":{"generation":1},"spec":{"suspend":true},"status":{"observedGeneration":1}`, status: "Suspended",
			msg: "spec.suspend is true: no remote call is made", kstatusStatus: kstatus.CurrentStatus},
		{name: "Stalled before Ready",
			object: `"metadata":{"generation":1},"status":{"observedGeneration":1,"conditions":[` + ready +
				`,{"type":"Stalled","status":"True","reason":"Unauthorized","message":"HTTP 401"}]}`,
			status: "Degraded", msg: "HTTP 401", kstatusStatus: kstatus.FailedStatus},
		{name: "Stalled without a message",
			object: `"metadata":{"generation":1},"status":{"observedGeneration":1,"conditions":[{"type":"Stalled","status":"True"}]}`,
			status: "Degraded", msg: "Stalled", kstatusStatus: kstatus.FailedStatus},
		{name: "Stalled False is not stalled",
			object: `"metadata":{"generation":1},"status":{"observedGeneration":1,"conditions":[{"type":"Stalled","status":"False"},` + ready + `]}`,
			status: "Healthy", msg: "all good", kstatusStatus: kstatus.CurrentStatus},
		{name: "retrying",
			object: `"metadata":{"generation":1},"status":{"observedGeneration":1,"conditions":[` +
				`{"type":"Ready","status":"False","reason":"RemoteError","message":"HTTP 503"},` +
				`{"type":"Reconciling","status":"True","reason":"RemoteError","message":"Retrying: HTTP 503"}]}`,
			status: "Progressing", msg: "HTTP 503", kstatusStatus: kstatus.InProgressStatus},
		{name: "Ready Unknown",
			object: `"metadata":{"generation":1},"status":{"observedGeneration":1,"conditions":[{"type":"Ready","status":"Unknown","reason":"Creating"}]}`,
			status: "Progressing", msg: "Waiting for the operator", kstatusStatus: kstatus.InProgressStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := `{"apiVersion":"users.chatbot.com/v1alpha1","kind":"Segment",` + tc.object + `}`
			var obj map[string]any
			if err := json.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatal(err)
			}
			status, msg, err := argoHealth(obj)
			if err != nil {
				t.Fatalf("Argo CD health check: %v", err)
			}
			if status != tc.status || msg != tc.msg {
				t.Errorf("Argo CD: %s %q, want %s %q", status, msg, tc.status, tc.msg)
			}
			if tc.kstatusStatus == "" {
				return
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON([]byte(doc)); err != nil {
				t.Fatal(err)
			}
			res, err := kstatus.Compute(u)
			if err != nil {
				t.Fatalf("kstatus: %v", err)
			}
			if res.Status != tc.kstatusStatus {
				t.Errorf("kstatus: %s (%s), want %s", res.Status, res.Message, tc.kstatusStatus)
			}
		})
	}
}

// The GitOps page shows the health check whole, so that a reader can install it from there:
// it must be the file the suite runs, to the byte.
func TestGitOpsPageShowsTheArgoHealthCheck(t *testing.T) {
	script, err := os.ReadFile(argoHealthScript)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "user", "gitops.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```lua\n"+string(script)+"```\n") {
		t.Error("docs/user/gitops.md's lua block is not config/argocd/segment-health.lua: copy the file into it")
	}
}
