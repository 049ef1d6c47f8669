package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a Segment. Ready is the summary that kubectl wait, kstatus, Flux and
// Argo CD read; Reconciling and Stalled follow kstatus' abnormal-true convention and are
// present only while true.
const (
	// ConditionReady is True when the remote segment exists with the desired name and every
	// desired member has been added.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is still working towards Ready.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator cannot progress until the spec or the
	// credentials change (the API refused the request or the token).
	ConditionStalled = "Stalled"
	// ConditionMembersNotRemovable is True when members were removed from spec.members that
	// the API cannot remove from the remote segment.
	ConditionMembersNotRemovable = "MembersNotRemovable"
)

// Condition reasons. They are stable: alerts and scripts may match on them.
const (
	// ReasonSynced: the remote segment matches the spec.
	ReasonSynced = "Synced"
	// ReasonCreating: the remote segment was just created; members are being added.
	ReasonCreating = "Creating"
	// ReasonRemoteError: the API failed in a way worth retrying (5xx, network); retried with backoff.
	ReasonRemoteError = "RemoteError"
	// ReasonRateLimited: the API answered 429; retried after its Retry-After.
	ReasonRateLimited = "RateLimited"
	// ReasonUnauthorized: the API refused the token (401/403). Fix the token.
	ReasonUnauthorized = "Unauthorized"
	// ReasonRemoteRejected: the API refused the request (400/422); retried when the spec changes.
	ReasonRemoteRejected = "RemoteRejected"
	// ReasonCredentialsError: no usable token (missing Secret, key or file).
	ReasonCredentialsError = "CredentialsError"
	// ReasonDeleting: the Segment is being deleted but the remote segment could not be yet.
	ReasonDeleting = "Deleting"
	// ReasonRemovedFromSpec: members left spec.members that the API cannot remove.
	ReasonRemovedFromSpec = "RemovedFromSpec"
	// ReasonRecreated: the remote segment was deleted outside the operator and made again.
	ReasonRecreated = "Recreated"
)

// SegmentFinalizer makes Kubernetes wait for the remote segment's deletion before it
// removes a Segment.
const SegmentFinalizer = "users.chatbot.com/finalizer"

// SegmentSpec is the desired state of a ChatBot.com user segment.
type SegmentSpec struct {
	// name is the segment's name in ChatBot, 1 to 256 characters. When omitted, the
	// Segment's metadata.name is used. Changing it renames the remote segment in place (its
	// ID and members are kept). ChatBot does not require names to be unique.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name,omitempty"`

	// members are the ChatBot user IDs that belong to the segment: a set, each ID 1 to 64
	// letters and digits. The operator adds the members that are missing. The ChatBot API
	// has no way to remove a member: removing an ID from this list does not remove it from
	// the remote segment; the MembersNotRemovable condition and a Warning event say so.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=5000
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9]+$`
	Members []string `json:"members,omitempty"`
}

// SegmentStatus is the observed state of the remote segment.
type SegmentStatus struct {
	// id is the remote segment's ChatBot ID, set as soon as the segment is created.
	// +optional
	ID string `json:"id,omitempty"`

	// name is the remote segment's name as last observed or set.
	// +optional
	Name string `json:"name,omitempty"`

	// remoteMembers is the member count ChatBot reports for the segment. It can exceed
	// len(spec.members): members added outside the operator, or removed from the spec,
	// stay in the segment.
	// +optional
	// +kubebuilder:default=0
	RemoteMembers int32 `json:"remoteMembers"`

	// createdAt is when ChatBot created the remote segment.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`

	// addedMembers are the user IDs the operator has added to the remote segment, sorted.
	// The API cannot list a segment's members, so this record is how the operator knows
	// which desired members are still to be added. It is reset when the segment is
	// (re)created.
	// +optional
	// +listType=set
	AddedMembers []string `json:"addedMembers,omitempty"`

	// notRemovableMembers counts the added members that are no longer in spec.members
	// and that the API cannot remove.
	// +optional
	NotRemovableMembers int32 `json:"notRemovableMembers,omitempty"`

	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (the summary), Reconciling and Stalled (present while true), and
	// MembersNotRemovable.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Segment is a ChatBot.com user segment managed from Kubernetes: a name and a set of member
// user IDs. The operator creates, renames, fills and deletes the remote segment to match.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=seg,categories=chatbot
// +kubebuilder:printcolumn:name="Remote Name",type=string,JSONPath=`.status.name`
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.status.id`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.remoteMembers`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Segment struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired segment. It may be omitted: a segment named after the Segment,
	// with no members.
	// +optional
	Spec SegmentSpec `json:"spec"`

	// status is the observed remote segment.
	// +optional
	Status SegmentStatus `json:"status,omitempty"`
}

// RemoteName is the name the remote segment should have: spec.name, or metadata.name.
func (s *Segment) RemoteName() string {
	if s.Spec.Name != "" {
		return s.Spec.Name
	}
	return s.Name
}

// +kubebuilder:object:root=true

// SegmentList contains a list of Segment.
type SegmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Segment `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Segment{}, &SegmentList{})
}
