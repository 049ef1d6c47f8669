// Package v1alpha1 contains the users.chatbot.com/v1alpha1 API: the Segment kind.
// +kubebuilder:object:generate=true
// +groupName=users.chatbot.com
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the Segment API.
	GroupVersion = schema.GroupVersion{Group: "users.chatbot.com", Version: "v1alpha1"}

	// SchemeBuilder registers the API's types with a runtime.Scheme. It is apimachinery's,
	// not controller-runtime's (deprecated: an API package should not need
	// controller-runtime to be imported).
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the API's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers Segment and SegmentList, and the options types every group
// version serves (ListOptions, ...).
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Segment{}, &SegmentList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
