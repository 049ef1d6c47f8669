package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SegmentFinalizer makes Kubernetes wait for the remote segment's deletion before it
// removes a Segment.
const SegmentFinalizer = "users.chatbot.com/finalizer"

// AnnotationCreatePending is where versions before status.ownership recorded a create
// about to be attempted. It is never trusted (anyone who may edit a Segment may write an
// annotation): on a Segment no reconcile of this version has written yet, the operator
// reports it in a Warning event (CreateIntentIgnored), so that what such a create made
// can be found by hand.
const AnnotationCreatePending = "users.chatbot.com/create-pending"

// AnnotationForgetCreate asks the operator to forget the pending create recorded in
// status.ownership.createPending, the way out of CreateUncertain: its value must be that
// record's "at" time, exactly as the condition message quotes it, so that it forgets that
// create and no later one. The operator then goes on as if the create had made nothing, and
// says in a Warning event (CreateForgotten) the name and time to look for: whatever that
// create made is left in ChatBot.
const AnnotationForgetCreate = "users.chatbot.com/forget-create"

// ReconcileRequestAnnotation asks the operator to reconcile a Segment now, as it asks Flux's
// controllers (the same key as fluxcd/pkg/apis/meta's): each new value is handled once, at
// once, against a fresh listing of the account, and then recorded in
// status.lastHandledReconcileAt. Any value will do; `date +%s` is the convention:
//
//	kubectl annotate --overwrite segment NAME reconcile.fluxcd.io/requestedAt="$(date +%s)"
const ReconcileRequestAnnotation = "reconcile.fluxcd.io/requestedAt"

// DefaultCredentialsLabel is the label that, with the value "true" on a Namespace, lets the
// Segments of that namespace use the manager's own credentials (its --chatbot-api-token-file or
// $CHATBOT_API_TOKEN) without spec.credentialsRef. A user with the edit role cannot label
// their namespace: it is an administrator's grant. So is the manager flag
// --default-credentials-namespaces.
const DefaultCredentialsLabel = "users.chatbot.com/default-credentials"

// CredentialsLabel must be on a Secret named by spec.credentialsRef, with the value "true":
// the manager caches and reads only Secrets that carry it.
const CredentialsLabel = "users.chatbot.com/credentials"

// MembersLabel must be on a ConfigMap named by spec.membersFrom, with the value "true": the
// manager caches and reads only ConfigMaps so labelled.
const MembersLabel = "users.chatbot.com/members"

// MaxMembers is the most members a Segment may have, spec.members (at most 5,000 of them)
// and spec.membersFrom together. The record of added members holds some 140,000: the rest
// is room for members removed from the spec (which stay recorded) under
// memberRemovalPolicy Warn.
const MaxMembers = 120_000

// MemberRecordLabel is on the ConfigMaps, in the manager's own namespace, that hold the
// record of the members added to large segments (status.memberRecord.configMap).
const MemberRecordLabel = "users.chatbot.com/member-record"

// CredentialsInUseFinalizer is on a credentials Secret while a Segment may still need it
// to reach ChatBot: deleting the Secret (or its namespace) waits until those Segments have
// deleted their remote segments. The manager removes it once no Segment needs the Secret.
const CredentialsInUseFinalizer = "users.chatbot.com/credentials-in-use"

// Keys of a credentials Secret.
const (
	// CredentialsTokenKey holds the ChatBot Developer access token. Required.
	CredentialsTokenKey = "token"
	// CredentialsURLKey holds the API base URL. Optional: the manager's --chatbot-api-url.
	CredentialsURLKey = "apiURL"
)

// DeletionPolicy says what happens to the remote segment when the Segment is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete deletes the remote segment with the Segment.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves the remote segment in ChatBot.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// AdoptionPolicy says whether an existing remote segment may be taken over by name.
// +kubebuilder:validation:Enum=None;AdoptByName
type AdoptionPolicy string

const (
	// AdoptionPolicyNone creates a new remote segment (unless spec.id names one).
	AdoptionPolicyNone AdoptionPolicy = "None"
	// AdoptionPolicyAdoptByName adopts the one remote segment with the desired name that no
	// other Segment manages, and creates one if there is none. Several: AdoptionAmbiguous.
	AdoptionPolicyAdoptByName AdoptionPolicy = "AdoptByName"
)

// ManagementPolicy says whether the operator changes the remote segment.
// +kubebuilder:validation:Enum=Manage;ObserveOnly
type ManagementPolicy string

const (
	// ManagementPolicyManage creates, renames, fills and deletes the remote segment.
	ManagementPolicyManage ManagementPolicy = "Manage"
	// ManagementPolicyObserveOnly only reads: status.plan says what Manage would change.
	ManagementPolicyObserveOnly ManagementPolicy = "ObserveOnly"
)

// MemberRemovalPolicy says what happens when members leave spec.members, which the API
// cannot remove from a segment.
// +kubebuilder:validation:Enum=Warn;Recreate
type MemberRemovalPolicy string

const (
	// MemberRemovalPolicyWarn keeps the segment and reports MembersNotRemovable.
	MemberRemovalPolicyWarn MemberRemovalPolicy = "Warn"
	// MemberRemovalPolicyRecreate deletes the remote segment and creates a new one with
	// exactly spec.members: a new remote ID, and anything attached to the old ID in ChatBot
	// (members added outside the operator, references to the ID) is lost.
	MemberRemovalPolicyRecreate MemberRemovalPolicy = "Recreate"
)

// CredentialsReference names a Secret in the Segment's own namespace.
type CredentialsReference struct {
	// name of a Secret in the Segment's namespace that carries the label
	// users.chatbot.com/credentials=true, with the Developer access token under the key
	// "token" and, optionally, the API base URL under "apiURL" (the manager's own URL, or
	// one its --allowed-api-urls flag lists).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')`,message="spec.credentialsRef.name must be the name of a Secret: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	// +required
	Name string `json:"name"`
}

// MembersSource is one key of a ConfigMap that lists member IDs.
type MembersSource struct {
	// configMap is the name of a ConfigMap in the Segment's namespace, labelled
	// users.chatbot.com/members=true.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	ConfigMap string `json:"configMap"`

	// key is the key of the ConfigMap's data or binaryData holding the IDs.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +required
	Key string `json:"key"`
}

// SegmentSpec is the desired state of a ChatBot.com user segment.
type SegmentSpec struct {
	// name is the segment's name in ChatBot: at most 256 bytes in UTF-8 (the API documents
	// 256 without saying whether it counts bytes or characters, so the stricter reading is
	// enforced), not blank, with no control characters. When omitted, the Segment's
	// metadata.name is used. Changing it renames the remote segment in place (its ID and
	// members are kept). ChatBot does not require names to be unique.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule=`size(bytes(self)) <= 256`,message="spec.name must be at most 256 bytes in UTF-8 (the ChatBot API documents 256 without saying whether it counts bytes or characters)"
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'\p{Cc}')`,message="spec.name must not contain control characters (tabs, newlines, ...)"
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'[^\s\p{Z}\p{Cc}\p{Cf}]')`,message="spec.name must not be blank (spaces and invisible characters only)"
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

	// membersFrom names keys of ConfigMaps, in this Segment's namespace and labelled
	// users.chatbot.com/members=true, that hold more member IDs: one per line (blank lines
	// are skipped), in data, or gzip-compressed in binaryData. The members are spec.members
	// and the IDs of every source together, at most 5,000 for now. A change to a ConfigMap
	// named here is picked up at once. A missing ConfigMap or key, or a line that is not a
	// user ID, stops the Segment (MembersSourceError, naming ConfigMap, key and line) and
	// nothing is added until it is fixed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	MembersFrom []MembersSource `json:"membersFrom,omitempty"`

	// credentialsRef names the Secret, in this Segment's namespace, holding the ChatBot
	// account's token. Omitted: the manager's own credentials. Segments of one account share
	// one listing and one rate limit; accounts are never mixed.
	// +optional
	CredentialsRef *CredentialsReference `json:"credentialsRef,omitempty"`

	// id adopts an existing remote segment by its ChatBot ID instead of creating one. It
	// cannot be changed or removed once set. If the segment does not exist the Segment
	// reports RemoteNotFound (it is not recreated); if another Segment manages it, or this
	// Segment already manages another one, Conflict.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]+$`
	ID string `json:"id,omitempty"`

	// adoptionPolicy: None (default) creates a new remote segment; AdoptByName first adopts
	// the one existing segment with the desired name that no other Segment manages.
	// +optional
	// +kubebuilder:default=None
	AdoptionPolicy AdoptionPolicy `json:"adoptionPolicy,omitempty"`

	// deletionPolicy: Delete (default) deletes the remote segment when this Segment is
	// deleted; Orphan leaves it in ChatBot.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// memberRemovalPolicy: Warn (default) reports members removed from spec.members, which
	// the API cannot remove; Recreate deletes the remote segment and creates a new one with
	// exactly spec.members (new ID; members added outside the operator are lost).
	// +optional
	// +kubebuilder:default=Warn
	MemberRemovalPolicy MemberRemovalPolicy `json:"memberRemovalPolicy,omitempty"`

	// managementPolicy: Manage (default) changes the remote segment; ObserveOnly never
	// writes, and status.plan shows what Manage would do.
	// +optional
	// +kubebuilder:default=Manage
	ManagementPolicy ManagementPolicy `json:"managementPolicy,omitempty"`

	// suspend stops every remote call for this Segment, until set back to false. A
	// suspended Segment that is deleted keeps its finalizer (and its remote segment) until
	// it is resumed, or its deletionPolicy set to Orphan.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// SegmentPlan is what the operator would change, reported under managementPolicy ObserveOnly.
type SegmentPlan struct {
	// create is true when there is no remote segment and one would be created.
	// +optional
	Create bool `json:"create,omitempty"`
	// recreate is true when, under memberRemovalPolicy Recreate, the segment would be
	// deleted and created anew to remove members the API cannot remove.
	// +optional
	Recreate bool `json:"recreate,omitempty"`
	// renameFrom is the remote segment's name when it would be renamed (to renameTo).
	// +optional
	RenameFrom string `json:"renameFrom,omitempty"`
	// renameTo is the name the remote segment would be renamed to (from renameFrom).
	// +optional
	RenameTo string `json:"renameTo,omitempty"`
	// membersToAdd counts the desired members the operator has not added itself. The API
	// cannot list members, so some of them may already be in the segment.
	// +optional
	MembersToAdd int32 `json:"membersToAdd,omitempty"`
	// membersToAddSample names up to 10 of them.
	// +optional
	MembersToAddSample []string `json:"membersToAddSample,omitempty"`
	// membersNotRemovable counts the members the operator added that are no longer
	// desired, and that the API cannot remove.
	// +optional
	MembersNotRemovable int32 `json:"membersNotRemovable,omitempty"`
}

// SegmentOwnership is the operator's record of the remote segment a Segment manages. It
// lives in status, which only the operator writes: nothing a Segment's editor can write
// (spec, labels, annotations, finalizers) makes the operator change or delete a remote
// segment that this record does not name, or that a create it records may have made.
type SegmentOwnership struct {
	// id is the remote segment this Segment manages: one its own create made, or one it
	// adopted (spec.id, adoptionPolicy AdoptByName) after checking that no other Segment
	// manages it. Empty: it manages none yet.
	// +optional
	ID string `json:"id,omitempty"`

	// account is the ChatBot account id is in: a digest of the API URL and token it was
	// created or adopted with. Should spec.credentialsRef come to name another account where
	// id does not exist, the operator stops (AccountChanged) rather than create a second
	// segment or take the 404 of a delete for success. Where id is found under new
	// credentials (a rotated token), it is recorded anew.
	// +optional
	Account string `json:"account,omitempty"`

	// createPending records a create call whose outcome is not known yet: it is written
	// before the call, and replaced by id when the new segment's ID is known. Until then,
	// a crash or a lost response is resolved from a listing made after the call ended.
	// +optional
	CreatePending *CreateIntent `json:"createPending,omitempty"`
}

// CreateIntent is a create call the operator made or was about to make.
type CreateIntent struct {
	// at is when the create was attempted, by the operator's clock.
	// +required
	At metav1.MicroTime `json:"at"`
	// name is the name the segment was created with.
	// +required
	Name string `json:"name"`
	// account is the ChatBot account it was sent to (see the metrics' account label).
	// +optional
	Account string `json:"account,omitempty"`
}

// MemberRecord records the members added to a remote segment, as 8-byte digests of their
// IDs (never the IDs): inline while small, else in a ConfigMap of the manager's own
// namespace, which no tenant can write, so that status stays a few hundred bytes whatever
// the member count.
type MemberRecord struct {
	// added counts the distinct members the operator has added.
	// +required
	Added int32 `json:"added"`
	// digests is the record itself (the encoding of internal/ledger), while it is small.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Digests []byte `json:"digests,omitempty"`
	// configMap names the ConfigMap, in the manager's namespace, that holds the record
	// when it is too large for status.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ConfigMap string `json:"configMap,omitempty"`
	// readded is when the operator last added the desired members again because the
	// member count showed some missing, and how many: it does so again only if more go
	// missing, never in a loop.
	// +optional
	Readded *MembersReadded `json:"readded,omitempty"`
}

// Readd returns the record's last re-add, if any (nil for a nil record).
func (r *MemberRecord) Readd() *MembersReadded {
	if r == nil {
		return nil
	}
	return r.Readded
}

// MembersReadded records a re-add of the desired members after members went missing.
type MembersReadded struct {
	// missing is how many of the desired members the operator added the count showed
	// missing.
	// +required
	Missing int32 `json:"missing"`
	// at is when they were added again.
	// +required
	At metav1.Time `json:"at"`
}

// SegmentStatus is the observed state of the remote segment.
type SegmentStatus struct {
	// id is the remote segment's ChatBot ID: the one this Segment manages
	// (ownership.id), or under managementPolicy ObserveOnly the one it observes.
	// +optional
	ID string `json:"id,omitempty"`

	// ownership records which remote segment this Segment manages, and a create whose
	// outcome is not known yet. Only the operator writes it.
	// +optional
	Ownership *SegmentOwnership `json:"ownership,omitempty"`

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

	// addedMembers is how an earlier version recorded the members it added, every ID in
	// full. The operator reads it once into memberRecord and clears it.
	// +optional
	// +listType=set
	AddedMembers []string `json:"addedMembers,omitempty"`

	// memberRecord is the record of the members the operator has added to the remote
	// segment. The API cannot list a segment's members, so this is how the operator knows
	// which desired members are still to be added, and how many it can no longer remove.
	// It is reset when the segment is (re)created.
	// +optional
	MemberRecord *MemberRecord `json:"memberRecord,omitempty"`

	// notRemovableMembers counts the added members that are no longer in spec.members
	// and that the API cannot remove.
	// +optional
	NotRemovableMembers int32 `json:"notRemovableMembers,omitempty"`

	// missingMembers is how many of the desired members the operator added are missing
	// from the remote segment by its member count, at least (see MembersMissing).
	// +optional
	MissingMembers int32 `json:"missingMembers,omitempty"`

	// plan lists what the operator would change, under managementPolicy ObserveOnly.
	// +optional
	Plan *SegmentPlan `json:"plan,omitempty"`

	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// lastHandledReconcileAt is the value of the reconcile.fluxcd.io/requestedAt
	// annotation last handled, as on Flux's objects: the reconcile it asked for ran at
	// once, against a fresh listing of the account, and the conditions say how it ended,
	// failed or not. A tool that sets the annotation waits for this to equal it. A
	// suspended Segment handles no request until it is resumed.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// conditions: Ready (the summary), Reconciling and Stalled (present while true),
	// MembersNotRemovable and Suspended.
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
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.spec) || !has(oldSelf.spec.id) || (has(self.spec) && has(self.spec.id) && self.spec.id == oldSelf.spec.id)",message="spec.id cannot be changed once set, nor removed",fieldPath=".spec.id",reason=FieldValueForbidden
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
	// +kubebuilder:default={"observedGeneration":-1}
	Status SegmentStatus `json:"status,omitempty"`
}

// DeletionPolicyOrDefault returns spec.deletionPolicy, Delete if unset.
func (s *Segment) DeletionPolicyOrDefault() DeletionPolicy {
	if s.Spec.DeletionPolicy == "" {
		return DeletionPolicyDelete
	}
	return s.Spec.DeletionPolicy
}

// OwnedID is the remote segment this Segment manages (status.ownership.id), or "".
func (s *Segment) OwnedID() string {
	if s.Status.Ownership == nil {
		return ""
	}
	return s.Status.Ownership.ID
}

// PendingCreate is the create whose outcome is not known yet, or nil.
func (s *Segment) PendingCreate() *CreateIntent {
	if s.Status.Ownership == nil {
		return nil
	}
	return s.Status.Ownership.CreatePending
}

// ObserveOnly reports whether the operator may only read the remote segment.
func (s *Segment) ObserveOnly() bool { return s.Spec.ManagementPolicy == ManagementPolicyObserveOnly }

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
