package controller_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

var _ = Describe("Admission", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("admission-") })
	AfterEach(func() { cleanUp(ns) })

	DescribeTable("refuses a spec the API could not take, naming the field",
		func(spec usersv1alpha1.SegmentSpec, field, says string) {
			err := k8sClient.Create(ctx, &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: ns}, Spec: spec})
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(And(ContainSubstring(field), ContainSubstring(says)))
		},
		Entry("a blank name", usersv1alpha1.SegmentSpec{Name: " \t "}, "spec.name", "blank"),
		Entry("a name of ideographic spaces", usersv1alpha1.SegmentSpec{Name: "\u3000\u3000"}, "spec.name", "blank"),
		Entry("a name of zero-width characters", usersv1alpha1.SegmentSpec{Name: "\u200b\ufeff"}, "spec.name", "blank"),
		Entry("a newline in a name", usersv1alpha1.SegmentSpec{Name: "VIP\nclients"}, "spec.name", "control characters"),
		Entry("a terminal escape in a name", usersv1alpha1.SegmentSpec{Name: "VIP\x1b[31m"}, "spec.name", "control characters"),
		Entry("256 emoji: 256 characters, 1 KiB", usersv1alpha1.SegmentSpec{Name: strings.Repeat("🎉", 256)}, "spec.name", "256 bytes"),
		Entry("a path for a Secret name", usersv1alpha1.SegmentSpec{CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "A/../b"}},
			"spec.credentialsRef.name", "name of a Secret"),
		Entry("a path for a ConfigMap name", usersv1alpha1.SegmentSpec{MembersFrom: []usersv1alpha1.MembersSource{{ConfigMap: "A/../b", Key: "ids"}}},
			"spec.membersFrom[0].configMap", "should match"),
		Entry("a key no ConfigMap can have", usersv1alpha1.SegmentSpec{MembersFrom: []usersv1alpha1.MembersSource{{ConfigMap: "list", Key: "a/b"}}},
			"spec.membersFrom[0].key", "should match"),
		Entry("more than 16 sources", usersv1alpha1.SegmentSpec{MembersFrom: make([]usersv1alpha1.MembersSource, 17)},
			"spec.membersFrom", "must have at most 16 items"),
	)

	It("takes names at the limit: 256 ASCII characters, or 64 four-byte emoji, with inner spaces", func() {
		for i, name := range []string{strings.Repeat("a", 256), strings.Repeat("🎉", 64), "VIP  clients (é)"} {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "ok-" + string(rune('a'+i)), Namespace: ns},
				Spec: usersv1alpha1.SegmentSpec{Name: name, Suspend: true}}
			Expect(k8sClient.Create(ctx, seg)).To(Succeed())
		}
	})
})
