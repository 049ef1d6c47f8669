package remote

import (
	"context"
	"strings"
	"sync"

	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// MemberAdder adds members to segments of one account, merging requests that add the same
// users to different segments into one API call (the add-members endpoint takes up to 100
// segments per call). Merging costs no latency: a request joins a call only while that call
// waits for the client-side rate limit anyway, and a call on its way out takes no one else.
// So when the account is idle every request goes at once, alone; when it is busy, Segments
// with identical member sets share calls.
type MemberAdder struct {
	client *chatbot.Client
	mu     sync.Mutex
	open   map[string]*addCall // by user list; calls still waiting to go
	queued int                 // requests whose call has not answered yet
}

// addCall is one add-members call being gathered, and then its outcome.
type addCall struct {
	users    []string
	segments []string
	done     chan struct{}
	err      error
}

// NewMemberAdder returns a MemberAdder sending through c.
func NewMemberAdder(c *chatbot.Client) *MemberAdder {
	return &MemberAdder{client: c, open: map[string]*addCall{}}
}

// Add adds users to segment id and returns how many of them, a prefix of users, are now
// members for certain (see chatbot.Client.AddMembers). Requests with the same users, in the
// same order, are merged: callers pass sorted sets. A merged call that fails for a reason
// that may lie with one segment only (404 for a segment deleted out of band, any other
// 4xx) is retried alone for each segment, so one segment's failure is never reported as
// another's.
func (m *MemberAdder) Add(ctx context.Context, id string, users []string) (int, error) {
	if len(users) == 0 {
		return 0, nil
	}
	if len(users) > chatbot.MaxUsersPerAdd {
		return m.client.AddMembers(ctx, []string{id}, users)
	}
	call := m.join(id, users)
	select {
	case <-call.done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if call.err == nil {
		return len(users), nil
	}
	if apiErr, ok := chatbot.AsAPIError(call.err); ok && apiErr.Terminal() && !apiErr.Unauthorized() && len(call.segments) > 1 {
		return m.client.AddMembers(ctx, []string{id}, users)
	}
	return 0, call.err
}

// join adds id to the open call for users, or opens one.
func (m *MemberAdder) join(id string, users []string) *addCall {
	key := strings.Join(users, "\x00")
	m.mu.Lock()
	defer m.mu.Unlock()
	call := m.open[key]
	if call == nil {
		call = &addCall{users: users, done: make(chan struct{})}
		m.open[key] = call
		go m.send(key, call)
	}
	call.segments = append(call.segments, id)
	m.queued++
	if len(call.segments) == chatbot.MaxSegmentsPerAdd {
		delete(m.open, key) // full: later requests open the next call
	}
	return call
}

// send makes the call once the client lets it go, for the segments gathered by then. It is
// not cancelled with any one caller's context: others may be waiting on it. The client's
// HTTP timeouts bound it.
func (m *MemberAdder) send(key string, call *addCall) {
	closeCall := func() []string {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.open[key] == call {
			delete(m.open, key) // no one joins a call on its way out
		}
		return call.segments
	}
	call.err = m.client.AddMembersGathered(context.Background(), call.users, closeCall)
	closeCall() // also when the call never went (a Retry-After pause): its callers get the error
	m.mu.Lock()
	m.queued -= len(call.segments)
	m.mu.Unlock()
	close(call.done)
}
