// Package v1alpha1 contains the users.chatbot.com/v1alpha1 API: the Segment kind.
// +kubebuilder:object:generate=true
// +groupName=users.chatbot.com
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the Segment API.
	GroupVersion = schema.GroupVersion{Group: "users.chatbot.com", Version: "v1alpha1"}

	// SchemeBuilder registers the API's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the API's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
