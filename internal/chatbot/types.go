package chatbot

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Limits the API documents for its request fields.
const (
	// MaxNameLength is the longest segment name the API accepts, in characters.
	MaxNameLength = 256
	// MaxSegmentsPerAdd is the most segment IDs one add-members call accepts.
	MaxSegmentsPerAdd = 100
	// MaxUsersPerAdd is the most user IDs one add-members call accepts.
	MaxUsersPerAdd = 1000
)

// Segment is a segment as the list endpoint returns it.
type Segment struct {
	// ID is the remote identifier, 24 alphanumeric characters in the vendor's examples.
	ID string `json:"id"`
	// Name is the segment's display name; the API does not make names unique.
	Name string `json:"name"`
	// Users is the number of distinct members. The members themselves cannot be listed.
	Users int `json:"users"`
	// CreatedAt is when the segment was created.
	CreatedAt Timestamp `json:"createdAt"`
}

// Timestamp decodes the API's time strings. The segments page documents createdAt as
// "2019-01-23 13:32:30.163Z" (a space instead of the RFC 3339 "T"), while write responses
// carry RFC 3339 with milliseconds; both are accepted. It encodes in the documented
// createdAt form.
type Timestamp struct{ time.Time }

// createdAtLayout is the createdAt form of the vendor's list example.
const createdAtLayout = "2006-01-02 15:04:05.000Z07:00"

var timestampLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00",
	time.RFC3339Nano,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
}

// ParseTimestamp parses a time in any form the API is known to send.
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised timestamp %q", s)
}

// FormatCreatedAt formats t the way the list endpoint documents createdAt.
func FormatCreatedAt(t time.Time) string { return t.UTC().Format(createdAtLayout) }

// UnmarshalJSON accepts a string in either documented form, or null.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	parsed, err := ParseTimestamp(s)
	if err != nil {
		return err
	}
	t.Time = parsed
	return nil
}

// MarshalJSON encodes in the documented createdAt form.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(FormatCreatedAt(t.Time))
}

// Status is the status object the API puts in write responses and error bodies.
type Status struct {
	Code int    `json:"code"`
	Type string `json:"type"`
	// Message is not documented; the simulator and, we expect, the service put the
	// human-readable reason of an error here.
	Message string `json:"message,omitempty"`
}

// WriteResponse is the body of a successful create, add-members, rename or delete call.
type WriteResponse struct {
	// ID is set by create only.
	ID        string    `json:"id,omitempty"`
	Timestamp Timestamp `json:"timestamp"`
	Status    Status    `json:"status"`
}

// createRequest is the body of the create call.
type createRequest struct {
	Name string `json:"name"`
}

// renameRequest is the body of the rename call.
type renameRequest struct {
	Name string `json:"name"`
}

// addMembersRequest is the body of the add-members call.
type addMembersRequest struct {
	Segments []string `json:"segments"`
	Users    []string `json:"users"`
}
