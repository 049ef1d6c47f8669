// Package sources reads the member IDs that Segments take from ConfigMaps of their own
// namespace (spec.membersFrom), within budgets fixed in advance: however many sources a
// tenant names, and however large, the manager reads, parses and keeps no more than these.
//
// # Budgets
//
// Sources are weighed as the manager holds them while reading: a key's bytes once
// decompressed, and idCost bytes more for each ID (its string header, its entry in the set
// of members), so that many short IDs weigh what they cost.
//
//   - A key: at most MaxKeyBytes once decompressed (a gzip of a few KiB may expand to
//     gigabytes), lines of at most maxLine bytes, at most MaxMembers IDs.
//   - A Segment: its keys weigh at most Limits.SegmentBytes in all, and name at most
//     MaxMembers members with spec.members. A key named twice is read once. Keys are read
//     in order, and reading stops at the first key that takes either total past its bound:
//     a Segment naming 16 keys of 120,000 IDs reads two.
//   - The manager: the sources being read and held at once weigh at most
//     Limits.ParseBytes, all Segments of all namespaces together (a weighted semaphore). A
//     Segment takes its share before it reads (what its keys in the memo weigh, and the
//     most a key may weigh for each other, at most SegmentBytes; taken anew if a key left
//     the memo while it waited) and gives it back when its members are known. A Segment
//     waiting holds nothing. No number of tenants or Segments multiplies it.
//
// # What is remembered
//
//   - memo: what each key of each ConfigMap version was parsed into, for every Segment
//     that names it, at most maxMemoIDs IDs in all. Only the reads of Segments whose
//     sources were accepted are kept, and of those only a Segment's that read no more than
//     half of it: a Segment refused for its sources, or one of the heaviest, evicts nothing
//     that serves the others.
//   - refusals: the Segments whose sources were refused, with the versions refused (the
//     Segment's generation and each ConfigMap's UID and resourceVersion). Such a Segment
//     is not read again until its spec or one of its ConfigMaps changes.
//   - outcomes: the key versions refused on their own (a bad line, too large) or found
//     heavier than a Segment could take, without their IDs: the other Segments naming
//     them are refused without reading them again.
//
// Sources are only ever read in the Segment's own namespace, and only from ConfigMaps
// labelled users.chatbot.com/members=true.
package sources
