package remote

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// answerTTL is how long the answer of a call is kept for a request that left before it
// came and has not come back for it (its Segment deleted, or its members changed).
const answerTTL = 10 * time.Minute

// MemberAdder adds members to segments of one account, merging requests that add the same
// users to different segments into one API call (the add-members endpoint takes up to 100
// segments per call). Merging costs no latency: a request joins a call only while that call
// waits for its turn at the client-side rate limit anyway, and a call on its way out takes
// no one else. So when the account is idle every request goes at once, alone; when it is
// busy, Segments with identical member sets share calls.
//
// No request waits for a call's turn: a call whose turn is further off than
// chatbot.MaxTurnWait waits on its own, and its requests return at once, Throttled, with
// the wait; each comes back for the call's answer then (Add with the same users again).
type MemberAdder struct {
	client *chatbot.Client
	mu     sync.Mutex
	open   map[string]*addCall // by user list; calls still waiting to go
	joined map[string]*addCall // by segment ID: the call its request joined, until it takes the answer
	queued int                 // requests whose call has not answered yet
	swept  time.Time
}

// addCall is one add-members call being gathered, and then its outcome.
type addCall struct {
	key      string
	users    []string
	segments []string
	done     chan struct{}
	err      error
	// Guarded by MemberAdder.mu:
	turnAt     time.Time // when a call the rate limit sent back is next to go; zero: going
	answeredAt time.Time
}

// NewMemberAdder returns a MemberAdder sending through c.
func NewMemberAdder(c *chatbot.Client) *MemberAdder {
	return &MemberAdder{client: c, open: map[string]*addCall{}, joined: map[string]*addCall{}}
}

// Add adds users to segment id and returns how many of them, a prefix of users, are now
// members for certain (see chatbot.Client.AddMembers). Requests with the same users, in the
// same order, are merged: callers pass sorted sets. A merged call that fails for a reason
// that may lie with one segment only (404 for a segment deleted out of band, any other
// 4xx) is retried alone for each segment, so one segment's failure is never reported as
// another's. A request whose call waits for a later turn returns a Throttled
// *chatbot.APIError; the same request made again takes the call's answer, or waits again.
func (m *MemberAdder) Add(ctx context.Context, id string, users []string) (int, error) {
	if len(users) == 0 {
		return 0, nil
	}
	if len(users) > chatbot.MaxUsersPerAdd {
		return m.client.AddMembers(ctx, []string{id}, users)
	}
	call := m.join(ctx, id, users)
	for {
		m.mu.Lock()
		turnAt := call.turnAt
		m.mu.Unlock()
		if wait := time.Until(turnAt); wait > chatbot.MaxTurnWait {
			return 0, chatbot.Throttled(chatbot.OpAdd, wait)
		}
		select {
		case <-call.done:
		case <-time.After(chatbot.MaxTurnWait): // the call may have been sent back meanwhile
			continue
		case <-ctx.Done():
			return 0, ctx.Err() // the request stays in its call, for the next try
		}
		break
	}
	m.mu.Lock()
	if m.joined[id] == call {
		delete(m.joined, id)
	}
	m.mu.Unlock()
	if call.err == nil {
		return len(users), nil
	}
	if apiErr, ok := chatbot.AsAPIError(call.err); ok && apiErr.Terminal() && !apiErr.Unauthorized() && len(call.segments) > 1 {
		return m.client.AddMembers(ctx, []string{id}, users)
	}
	return 0, call.err
}

// join returns the call id's request joined before for the same users, or adds id to the
// open call for users, or opens one.
func (m *MemberAdder) join(ctx context.Context, id string, users []string) *addCall {
	key := strings.Join(users, "\x00")
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	if call := m.joined[id]; call != nil && call.key == key {
		return call
	}
	call := m.open[key]
	if call == nil {
		call = &addCall{key: key, users: users, done: make(chan struct{})}
		m.open[key] = call
		// The call takes the turn of the request that opens it (a create books its first
		// members' turn with its own).
		go m.send(chatbot.WithCaller(context.Background(), chatbot.CallerOf(ctx)), call)
	}
	call.segments = append(call.segments, id)
	m.joined[id] = call
	m.queued++
	if len(call.segments) == chatbot.MaxSegmentsPerAdd {
		delete(m.open, call.key) // full: later requests open the next call
	}
	return call
}

// sweep drops, at most once a minute, answers no request came back for.
func (m *MemberAdder) sweep() {
	now := time.Now()
	if now.Sub(m.swept) < time.Minute {
		return
	}
	m.swept = now
	for id, call := range m.joined {
		if !call.answeredAt.IsZero() && now.Sub(call.answeredAt) > answerTTL {
			delete(m.joined, id)
		}
	}
}

// send makes the call once the client lets it go, for the segments gathered by then. It is
// not cancelled with any one caller's context: others may be waiting on it. The client's
// HTTP timeouts bound it. Sent back by the rate limit, it waits for its turn here, where
// it holds no worker.
func (m *MemberAdder) send(ctx context.Context, call *addCall) {
	closeCall := func() []string {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.open[call.key] == call {
			delete(m.open, call.key) // no one joins a call on its way out
		}
		call.turnAt = time.Time{}
		return call.segments
	}
	for {
		call.err = m.client.AddMembersGathered(ctx, call.users, closeCall)
		apiErr, ok := chatbot.AsAPIError(call.err)
		if !ok || !apiErr.Throttled {
			break
		}
		m.mu.Lock()
		call.turnAt = time.Now().Add(apiErr.RetryAfter)
		m.mu.Unlock()
		time.Sleep(apiErr.RetryAfter)
	}
	closeCall() // also when the call never went (a Retry-After pause): its callers get the error
	m.mu.Lock()
	m.queued -= len(call.segments)
	call.answeredAt = time.Now()
	m.mu.Unlock()
	close(call.done)
}
