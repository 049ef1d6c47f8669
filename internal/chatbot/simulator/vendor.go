package simulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// segmentsPath is the vendor's collection path.
const segmentsPath = "/users/segments"

// maxBody bounds a request body; 1000 user IDs fit many times over.
const maxBody = 4 << 20

// routes registers the vendor paths and the control endpoint.
func (s *Server) routes() {
	mux := http.NewServeMux()
	mux.Handle("GET /users/segments", s.vendor(EndpointList, s.list))
	mux.Handle("POST /users/segments", s.vendor(EndpointCreate, s.createHandler))
	mux.Handle("POST /users/segments/members", s.vendor(EndpointAdd, s.add))
	mux.Handle("PUT /users/segments/{id}", s.vendor(EndpointRename, s.rename))
	mux.Handle("DELETE /users/segments/{id}", s.vendor(EndpointDelete, s.deleteHandler))
	s.controlRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Undocumented: the real service's answer to a wrong method on a known path, and
		// whether it checks the token first (here it does not: 405 and 404 come without).
		if p := r.URL.Path; p == segmentsPath || strings.HasPrefix(p, segmentsPath+"/") {
			switch p {
			case segmentsPath:
				w.Header().Set("Allow", "GET, POST")
			case segmentsPath + "/members":
				w.Header().Set("Allow", "POST")
			default:
				w.Header().Set("Allow", "PUT, DELETE")
			}
			writeError(w, s.now(), http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, p))
			return
		}
		writeError(w, s.now(), http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	s.mux = mux
}

// handler handles one authenticated vendor call: it returns the status and body to send.
// It runs with s.mu held.
type handler func(r *http.Request, body []byte) (int, any)

// vendor wraps a handler with what every vendor call goes through, in order: counting,
// latency, authentication, the rate limit, injected faults, then the handler.
func (s *Server) vendor(ep Endpoint, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts.Requests[ep]++
		latency := s.latency
		s.mu.Unlock()
		if !sleep(r, latency) {
			return
		}

		// Undocumented: whether the real service checks the token before or after its rate
		// limit. Checking it first keeps unauthenticated callers out of the counters' way.
		if !s.authorized(r) {
			s.mu.Lock()
			s.counts.Unauthorized++
			s.mu.Unlock()
			writeError(w, s.now(), http.StatusUnauthorized, "authorization failed: missing or invalid access token")
			return
		}

		// Undocumented: the real service's body size limit, and its answer beyond it.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(w, s.now(), http.StatusRequestEntityTooLarge, "request body too large")
			return
		}

		s.mu.Lock()
		if wait, limited := s.limiter.take(); limited {
			s.counts.Throttled++
			s.mu.Unlock()
			w.Header().Set("Retry-After", retryAfterSeconds(wait))
			writeError(w, s.now(), http.StatusTooManyRequests, "rate limit exceeded")
			return
		}
		f := s.faults.decide(ep, &s.counts)
		s.mu.Unlock()

		if f.delay > 0 && !sleep(r, f.delay) {
			return
		}
		switch {
		case f.drop:
			dropConnection(w)
			return
		case f.status != 0:
			if f.retryAfter > 0 {
				w.Header().Set("Retry-After", retryAfterSeconds(f.retryAfter))
			}
			writeError(w, s.now(), f.status, "injected fault: "+http.StatusText(f.status))
			return
		}

		s.mu.Lock()
		status, resp := h(r, body)
		if status >= 200 && status < 300 {
			s.counts.Succeeded[ep]++
			if ep != EndpointList {
				s.persist()
			}
		}
		s.mu.Unlock()

		if f.late > 0 && !sleep(r, f.late) {
			return
		}
		if f.loseResponse && status >= 200 && status < 300 {
			// The change happened, but the caller never learns it: the ambiguous failure a
			// non-idempotent create must survive.
			writeError(w, s.now(), http.StatusInternalServerError, "injected fault: response lost after the change was made")
			return
		}
		writeJSON(w, status, resp)
	})
}

// authorized checks the Bearer token. The scheme is matched case-insensitively.
func (s *Server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	s.mu.Lock()
	defer s.mu.Unlock()
	return ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) == s.token
}

func (s *Server) list(*http.Request, []byte) (int, any) {
	out := make([]chatbot.Segment, 0, len(s.order))
	for _, id := range s.order {
		seg := s.segments[id]
		out = append(out, chatbot.Segment{ID: seg.id, Name: seg.name, Users: len(seg.members),
			CreatedAt: chatbot.Timestamp{Time: seg.createdAt}})
	}
	return http.StatusOK, out
}

func (s *Server) createHandler(_ *http.Request, body []byte) (int, any) {
	var req struct {
		Name *string `json:"name"`
	}
	if msg := decode(body, &req); msg != "" {
		return s.errorBody(http.StatusBadRequest, msg)
	}
	if msg := validateName(req.Name); msg != "" {
		return s.errorBody(http.StatusBadRequest, msg)
	}
	// Undocumented: whether names must be unique. The docs do not say, and the create call
	// returns only an ID, so the simulator allows duplicates, the less forgiving assumption
	// for a client.
	seg := s.create(*req.Name)
	return http.StatusOK, s.success(seg.id)
}

func (s *Server) add(_ *http.Request, body []byte) (int, any) {
	var req struct {
		Segments *[]string `json:"segments"`
		Users    *[]string `json:"users"`
	}
	if msg := decode(body, &req); msg != "" {
		return s.errorBody(http.StatusBadRequest, msg)
	}
	if msg := validateIDs("segments", req.Segments, chatbot.MaxSegmentsPerAdd); msg != "" {
		return s.errorBody(http.StatusBadRequest, msg)
	}
	if msg := validateIDs("users", req.Users, chatbot.MaxUsersPerAdd); msg != "" {
		return s.errorBody(http.StatusBadRequest, msg)
	}
	// Undocumented: what happens when some segment IDs exist and others do not. The
	// simulator answers 404 and changes nothing (all or nothing).
	for _, id := range *req.Segments {
		if _, ok := s.segments[id]; !ok {
			return s.errorBody(http.StatusNotFound, fmt.Sprintf("segment %q not found", id))
		}
	}
	for _, id := range *req.Segments {
		seg := s.segments[id]
		for _, u := range *req.Users {
			if _, deleted := s.deletedUsers[u]; !deleted {
				seg.members[u] = struct{}{} // adding an existing member is a no-op
			}
		}
	}
	return http.StatusOK, s.success("")
}

func (s *Server) rename(r *http.Request, body []byte) (int, any) {
	var req struct {
		Name *string `json:"name"`
	}
	if msg := decode(body, &req); msg != "" {
		return s.errorBody(http.StatusBadRequest, msg)
	}
	if msg := validateName(req.Name); msg != "" {
		return s.errorBody(http.StatusBadRequest, msg)
	}
	// Undocumented: which comes first for a bad body and an unknown ID; here the 400.
	seg, ok := s.segments[r.PathValue("id")]
	if !ok {
		return s.errorBody(http.StatusNotFound, fmt.Sprintf("segment %q not found", r.PathValue("id")))
	}
	seg.name = *req.Name
	return http.StatusOK, s.success("")
}

func (s *Server) deleteHandler(r *http.Request, _ []byte) (int, any) {
	if !s.delete(r.PathValue("id")) {
		return s.errorBody(http.StatusNotFound, fmt.Sprintf("segment %q not found", r.PathValue("id")))
	}
	return http.StatusOK, s.success("")
}

// decode parses a JSON object body; it returns a message for a 400, or "".
func decode(body []byte, v any) string {
	if len(strings.TrimSpace(string(body))) == 0 {
		return "request body is required"
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return fmt.Sprintf("field %q must be of type %s", typeErr.Field, fieldTypes[typeErr.Field])
		}
		return "malformed JSON body: " + err.Error()
	}
	return ""
}

// fieldTypes are the documented types of the request fields.
var fieldTypes = map[string]string{"name": "string", "segments": "array of strings", "users": "array of strings"}

// validateName applies the documented String(1, 256). Undocumented: whether the length is
// counted in characters, bytes or UTF-16 units (here characters), and whether a name of
// spaces only is accepted (here it is).
func validateName(name *string) string {
	if name == nil {
		return `"name" is required`
	}
	if n := utf8.RuneCountInString(*name); n < 1 || n > chatbot.MaxNameLength {
		return fmt.Sprintf(`"name" must be 1 to %d characters, got %d`, chatbot.MaxNameLength, n)
	}
	return ""
}

func validateIDs(field string, ids *[]string, maxLen int) string {
	if ids == nil {
		return fmt.Sprintf("%q is required", field)
	}
	if n := len(*ids); n < 1 || n > maxLen {
		return fmt.Sprintf("%q must hold 1 to %d items, got %d", field, maxLen, n)
	}
	// Undocumented: any rule on the IDs' form. The simulator refuses blank ones only, and
	// does not check that users exist (the real service may).
	for i, id := range *ids {
		if strings.TrimSpace(id) == "" {
			return fmt.Sprintf("%q item %d is empty", field, i)
		}
	}
	return ""
}

// writeResponse is the documented body of a successful write; id is set by create only.
// Unlike createdAt in listings, its timestamp is RFC 3339 with milliseconds.
type writeResponse struct {
	ID        string         `json:"id,omitempty"`
	Timestamp string         `json:"timestamp"`
	Status    chatbot.Status `json:"status"`
}

func (s *Server) success(id string) writeResponse {
	return writeResponse{ID: id, Timestamp: rfc3339Millis(s.now()), Status: chatbot.Status{Code: http.StatusOK, Type: "success"}}
}

func rfc3339Millis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func (s *Server) errorBody(code int, msg string) (int, any) {
	return code, errorDoc(s.now(), code, msg)
}

// errorDoc is an error body: the documented status object, with the reason in "message"
// (the field name is undocumented).
func errorDoc(now time.Time, code int, msg string) any {
	return struct {
		Timestamp string         `json:"timestamp"`
		Status    chatbot.Status `json:"status"`
	}{
		Timestamp: rfc3339Millis(now),
		Status:    chatbot.Status{Code: code, Type: "error", Message: msg},
	}
}

func writeError(w http.ResponseWriter, now time.Time, code int, msg string) {
	writeJSON(w, code, errorDoc(now, code, msg))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
