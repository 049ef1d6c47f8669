// Package ledger keeps the record of the members the operator has added to a remote
// segment, in little space whatever their number.
//
// The ChatBot API cannot list a segment's members nor remove one, so this record is all
// the operator knows of them: what to add (the desired members not in it) and how many it
// can no longer remove (those in it that are no longer desired). An earlier version kept
// every added ID in status.addedMembers, which grew with every member set a Segment ever
// had until the API server refused the object. A Ledger keeps an 8-byte digest of each ID,
// sorted, and encodes the gaps between them: about 7 bytes a member, 700 KB for 100,000.
//
// Two IDs whose digests are equal count as one: the second would never be added. With the
// first 8 bytes of SHA-256 the chance of that among 1,000,000 IDs is below 1 in 10^7, and
// only IDs the Segment itself names can collide, so it affects no other Segment.
package ledger
