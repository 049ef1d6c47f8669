package simulator

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"
)

// Endpoint names one of the five vendor endpoints, for counters and fault targeting.
type Endpoint string

// The vendor endpoints.
const (
	EndpointList   Endpoint = "list"
	EndpointCreate Endpoint = "create"
	EndpointAdd    Endpoint = "add"
	EndpointRename Endpoint = "rename"
	EndpointDelete Endpoint = "delete"
)

// Endpoints lists every vendor endpoint.
var Endpoints = []Endpoint{EndpointList, EndpointCreate, EndpointAdd, EndpointRename, EndpointDelete}

// Options configures a Server.
type Options struct {
	// Token is the Developer access token the server accepts. Required.
	Token string
	// Latency is added to every vendor call before it is handled.
	Latency time.Duration
	// RateLimit is the most vendor calls per second the server accepts, across all
	// endpoints (burst: one second's worth); beyond it, 429 with Retry-After. 0: no limit.
	RateLimit float64
	// StateFile, if set, is loaded at start and rewritten after every change, so a
	// restarted simulator keeps its segments and members.
	StateFile string
	// Faults are the initial injected faults.
	Faults Faults
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Segment is the simulator's full view of one segment, members included: what the real
// API would never show.
type Segment struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
	Members   []string  `json:"members"`
}

type segment struct {
	id        string
	name      string
	createdAt time.Time
	members   map[string]struct{}
}

func (s *segment) view() Segment {
	members := make([]string, 0, len(s.members))
	for m := range s.members {
		members = append(members, m)
	}
	sort.Strings(members)
	return Segment{ID: s.id, Name: s.name, CreatedAt: s.createdAt, Members: members}
}

// Server is the simulated API. It is an http.Handler and safe for concurrent use.
type Server struct {
	token     string
	now       func() time.Time
	stateFile string
	mux       *http.ServeMux

	mu       sync.Mutex
	segments map[string]*segment
	order    []string // IDs in creation order: the list endpoint's order
	// deletedUsers are users deleted from the account (DeleteUsers): an add of one is
	// accepted and changes nothing, as for a user ChatBot no longer has.
	deletedUsers map[string]struct{}
	latency      time.Duration
	faults       Faults
	limiter      *limiter
	counts       Counts
}

// New returns a Server, loading Options.StateFile if it exists.
func New(opts Options) (*Server, error) {
	if opts.Token == "" {
		return nil, fmt.Errorf("simulator: a token is required")
	}
	if err := opts.Faults.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		token:     opts.Token,
		now:       opts.Now,
		stateFile: opts.StateFile,
		segments:  map[string]*segment{},
		latency:   opts.Latency,
		faults:    opts.Faults,
		counts:    newCounts(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.limiter = newLimiter(opts.RateLimit, s.now)
	if s.stateFile != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	s.routes()
	return s, nil
}

// ServeHTTP serves the vendor paths and the /_sim/ control endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Segments returns every segment with its members, in creation order.
func (s *Server) Segments() []Segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Segment, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.segments[id].view())
	}
	return out
}

// Segment returns one segment with its members.
func (s *Server) Segment(id string) (Segment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg, ok := s.segments[id]
	if !ok {
		return Segment{}, false
	}
	return seg.view(), true
}

// Create creates a segment directly, bypassing HTTP, faults and counters: an out-of-band
// change for tests. It returns the new ID.
func (s *Server) Create(name string, members ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := s.create(name)
	for _, m := range members {
		seg.members[m] = struct{}{}
	}
	s.persist()
	return seg.id
}

// RemoveMembers removes members from a segment directly, as a person can in ChatBot's
// UI (the API cannot); false if the segment does not exist.
func (s *Server) RemoveMembers(id string, members ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg, ok := s.segments[id]
	if ok {
		for _, m := range members {
			delete(seg.members, m)
		}
		s.persist()
	}
	return ok
}

// DeleteUsers deletes users from the account: they leave every segment, and adding them
// again changes nothing (an assumption: the vendor documents no such case).
func (s *Server) DeleteUsers(users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deletedUsers == nil {
		s.deletedUsers = map[string]struct{}{}
	}
	for _, u := range users {
		s.deletedUsers[u] = struct{}{}
		for _, seg := range s.segments {
			delete(seg.members, u)
		}
	}
	s.persist()
}

// Rename renames a segment directly (out of band); false if it does not exist.
func (s *Server) Rename(id, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg, ok := s.segments[id]
	if ok {
		seg.name = name
		s.persist()
	}
	return ok
}

// Delete deletes a segment directly (out of band); false if it did not exist.
func (s *Server) Delete(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.delete(id)
	if ok {
		s.persist()
	}
	return ok
}

// Reset deletes every segment and zeroes the counters.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.segments = map[string]*segment{}
	s.order = nil
	s.counts = newCounts()
	s.persist()
}

// SetToken changes the token the server accepts, as when the account's token is rotated.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// SetLatency changes the latency added to every vendor call.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetRateLimit changes the rate limit (calls per second; 0 removes it).
func (s *Server) SetRateLimit(perSecond float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limiter = newLimiter(perSecond, s.now)
}

// create adds a segment; the caller holds mu.
func (s *Server) create(name string) *segment {
	seg := &segment{id: s.newID(), name: name, createdAt: s.now().UTC().Truncate(time.Millisecond), members: map[string]struct{}{}}
	s.segments[seg.id] = seg
	s.order = append(s.order, seg.id)
	return seg
}

// delete removes a segment; the caller holds mu.
func (s *Server) delete(id string) bool {
	if _, ok := s.segments[id]; !ok {
		return false
	}
	delete(s.segments, id)
	s.order = slices.DeleteFunc(s.order, func(o string) bool { return o == id })
	return true
}

// newID returns a 24-character alphanumeric ID like the vendor's: 8 hex digits of Unix
// time, the shape of the documented IDs, then 16 random characters of [0-9a-z]. The
// documented IDs look hexadecimal, but one contains a "g", so the simulator's do not stay
// hexadecimal either: a client that assumed so would fail here, not in production.
func (s *Server) newID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	for {
		var b [16]byte
		for i := range b {
			b[i] = alphabet[rand.IntN(len(alphabet))]
		}
		id := fmt.Sprintf("%08x%s", uint32(s.now().Unix()), b[:])
		if _, taken := s.segments[id]; !taken {
			return id
		}
	}
}

// stateDoc is the state file's format.
type stateDoc struct {
	Segments []Segment `json:"segments"`
}

// load reads the state file, if any.
func (s *Server) load() error {
	b, err := os.ReadFile(s.stateFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("simulator: read state file: %w", err)
	}
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("simulator: parse state file %s: %w", s.stateFile, err)
	}
	for _, v := range doc.Segments {
		seg := &segment{id: v.ID, name: v.Name, createdAt: v.CreatedAt, members: map[string]struct{}{}}
		for _, m := range v.Members {
			seg.members[m] = struct{}{}
		}
		s.segments[seg.id] = seg
		s.order = append(s.order, seg.id)
	}
	return nil
}

// persist rewrites the state file atomically; the caller holds mu. A write failure is
// reported on stderr and does not fail the API call: the in-memory state stays right.
func (s *Server) persist() {
	if s.stateFile == "" {
		return
	}
	doc := stateDoc{Segments: make([]Segment, 0, len(s.order))}
	for _, id := range s.order {
		doc.Segments = append(doc.Segments, s.segments[id].view())
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err == nil {
		tmp := s.stateFile + ".tmp"
		if err = os.MkdirAll(filepath.Dir(s.stateFile), 0o755); err == nil {
			if err = os.WriteFile(tmp, b, 0o600); err == nil {
				err = os.Rename(tmp, s.stateFile)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chatbot-sim: cannot save state: %v\n", err)
	}
}
