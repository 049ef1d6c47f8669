package v1alpha1

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
	// ConditionMembersMissing is True when the remote segment's member count (the only
	// signal the API gives) is lower than the desired members the operator added: members
	// were removed, or users deleted, outside the operator.
	ConditionMembersMissing = "MembersMissing"
	// ConditionSuspended is True while spec.suspend is set: no remote call is made.
	ConditionSuspended = "Suspended"
)

// Condition reasons. They are stable: alerts and scripts may match on them.
const (
	// ReasonSynced: the remote segment matches the spec.
	ReasonSynced = "Synced"
	// ReasonCreating: the remote segment was just created; members are being added.
	ReasonCreating = "Creating"
	// ReasonRemoteError: the API failed in a way worth retrying (5xx, network); retried with backoff.
	ReasonRemoteError = "RemoteError"
	// ReasonRateLimited: the API answered 429; retried after its Retry-After, or with backoff
	// when it gave none.
	ReasonRateLimited = "RateLimited"
	// ReasonUnauthorized: the API refused the token (401/403). Fix the token.
	ReasonUnauthorized = "Unauthorized"
	// ReasonRemoteRejected: the API refused the request (400/422); retried when the spec changes.
	ReasonRemoteRejected = "RemoteRejected"
	// ReasonEndpointNotFound: the API answered 404 to a call that names no segment (list,
	// create): the API base URL is wrong, or the API moved. Checked again each drift interval.
	ReasonEndpointNotFound = "EndpointNotFound"
	// ReasonCredentialsError: no usable credentials (missing Secret, key or file, or an apiURL
	// the manager does not allow).
	ReasonCredentialsError = "CredentialsError"
	// ReasonMembersSourceError: a ConfigMap named by spec.membersFrom is missing, unlabelled
	// or lacks the key, or a line of it is not a user ID, or the members are more than
	// MaxMembers, or the sources hold more bytes than the manager reads for one Segment
	// (--max-member-source-bytes-per-segment). Nothing is added, nor read again, until the
	// spec or a ConfigMap it names changes.
	ReasonMembersSourceError = "MembersSourceError"
	// ReasonMemberRecordTooLarge: the record of the members added to the remote segment
	// (those since removed from the spec included) would outgrow what the operator keeps
	// (about 140,000). Nothing more is added; memberRemovalPolicy Recreate starts anew.
	ReasonMemberRecordTooLarge = "MemberRecordTooLarge"
	// ReasonMemberRecordQuotaExceeded: the record of the members added would take the records
	// the namespace's Segments keep in the manager's namespace past what a namespace may
	// (--max-member-record-bytes-per-namespace). Nothing more is added until records go
	// (Segments of the namespace deleted) or the bound is raised.
	ReasonMemberRecordQuotaExceeded = "MemberRecordQuotaExceeded"
	// ReasonMemberRecordNamespaceMissing: the record of the members added is too large for
	// status, and the namespace where the manager keeps such records does not exist, or the
	// manager was given none (--member-record-namespace). Nothing more is added.
	ReasonMemberRecordNamespaceMissing = "MemberRecordNamespaceMissing"
	// ReasonDeleting: the Segment is being deleted but the remote segment could not be yet.
	ReasonDeleting = "Deleting"
	// ReasonRemovedFromSpec: members left spec.members that the API cannot remove.
	ReasonRemovedFromSpec = "RemovedFromSpec"
	// ReasonRemovedOutside: members the operator added are missing from the remote segment
	// (MembersMissing); the desired members are added again once per change of the count.
	ReasonRemovedOutside = "RemovedOutside"
	// ReasonRecreated: the remote segment was deleted outside the operator and made again.
	ReasonRecreated = "Recreated"
	// ReasonSuspended: spec.suspend is true.
	ReasonSuspended = "Suspended"
	// ReasonConflict: another Segment already manages the remote segment this one claims.
	ReasonConflict = "Conflict"
	// ReasonCreateUncertain: a create may have happened without its ID being recorded, and
	// the listing does not say which segment it made. Set spec.id to adopt the right one.
	ReasonCreateUncertain = "CreateUncertain"
	// ReasonAccountChanged: the remote segment this Segment manages is not in the account its
	// credentials now name: spec.credentialsRef (or the manager's token) moved it to another
	// account. Put the credentials back, or delete the Segment with deletionPolicy Orphan.
	ReasonAccountChanged = "AccountChanged"
	// ReasonRemoteNotFound: the segment named by spec.id does not exist.
	ReasonRemoteNotFound = "RemoteNotFound"
	// ReasonAdoptionAmbiguous: adoptionPolicy AdoptByName found several segments with the name.
	ReasonAdoptionAmbiguous = "AdoptionAmbiguous"
	// ReasonObserved: managementPolicy ObserveOnly, and the remote segment matches the spec.
	ReasonObserved = "Observed"
	// ReasonDriftDetected: managementPolicy ObserveOnly, and status.plan lists what would change.
	ReasonDriftDetected = "DriftDetected"
)
