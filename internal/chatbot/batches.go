package chatbot

// Batch is one add-members call.
type Batch struct {
	Segments []string
	Users    []string
	// UsersEnd is the index in the caller's users just past this batch's users.
	UsersEnd int
	// LastOfUsers is true on the batch that sends this group of users to its last segments.
	LastOfUsers bool
}

// Batches splits an add-members request into calls the API accepts: groups of at most
// 1000 users, each sent to groups of at most 100 segments. 2,500 users to 150 segments is
// 3 x 2 = 6 calls.
func Batches(segmentIDs, users []string) []Batch {
	var out []Batch
	for u := 0; u < len(users); u += MaxUsersPerAdd {
		uEnd := min(u+MaxUsersPerAdd, len(users))
		for s := 0; s < len(segmentIDs); s += MaxSegmentsPerAdd {
			sEnd := min(s+MaxSegmentsPerAdd, len(segmentIDs))
			out = append(out, Batch{
				Segments:    segmentIDs[s:sEnd],
				Users:       users[u:uEnd],
				UsersEnd:    uEnd,
				LastOfUsers: sEnd == len(segmentIDs),
			})
		}
	}
	return out
}
