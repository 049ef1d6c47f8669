// Package export turns a ChatBot account's listing into Segment manifests that adopt each
// segment by spec.id: what `kubectl segments export` writes. It is pure (no client, no
// cluster): the command lists, this package decides and renders.
//
// Its vocabulary:
//
//	listed   a segment the account's listing returns: ID, name, user count, creation time
//	owned    a listed segment that a Segment in the cluster already owns, in the same
//	         account (status.ownership); it is left out, with its owner
//	refused  a listed segment that no Segment could adopt as listed (an ID or a name the
//	         CRD's validation refuses); it is left out, with the reason
//	item     every other listed segment: one Segment to write, with spec.id, spec.name
//	         exactly as listed, deletionPolicy (Orphan unless asked) and credentialsRef
//
// An item's metadata.name is a DNS-1123 subdomain made from the segment's name (Name).
// Names are unique among the items and avoid the names the caller says are taken: of
// segments sharing a name, the oldest (then the lowest ID) gets the plain name and the
// others the name and a suffix of their remote ID, so that the result depends on the set
// of segments listed and never on the order of the listing.
//
// Members cannot be exported: the API cannot list a segment's members. spec.members is
// left empty, which the operator reads as "nothing to add": it never removes a member
// (the API cannot), so adopting a segment leaves its members as they are. Each rendered
// manifest says so in a comment.
package export
