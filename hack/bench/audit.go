package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// auditPolicy makes the kube-apiserver log, one JSON line per request once it is answered,
// every write to Segments (the resource and its status) and to Events (both API groups),
// whoever the writer is; nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
  resources:
  - group: users.chatbot.com
    resources: [segments, segments/status]
  - group: events.k8s.io
    resources: [events]
  - group: ""
    resources: [events]
- level: None
`

// kubeWrites counts one user's Kubernetes writes. Segment and Status count the writes to
// a Segment (spec and metadata, status subresource) the API server accepted; Events the
// accepted Event writes (a create per new event; a repeated one may later be patched as
// a series); Refused every write it answered with a code of 400 or more (a conflict on an
// optimistic lock, say), counted nowhere else.
type kubeWrites struct {
	Segment, Status, Events, Refused int64
}

func (w kubeWrites) minus(o kubeWrites) kubeWrites {
	return kubeWrites{w.Segment - o.Segment, w.Status - o.Status, w.Events - o.Events, w.Refused - o.Refused}
}

// auditEvent is the part of an audit.k8s.io/v1 Event the counts need.
type auditEvent struct {
	Stage string `json:"stage"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// auditCounter follows an audit log written under auditPolicy and counts the writes of
// one user, the manager; the writes of every other user (the bench's own creates and
// patches) are only tallied in others.
type auditCounter struct {
	path    string
	user    string
	offset  int64
	partial []byte
	counts  kubeWrites
	others  int64
}

// read counts the lines appended since the last call and returns the totals so far.
func (a *auditCounter) read() (kubeWrites, error) {
	f, err := os.Open(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return a.counts, nil
	}
	if err != nil {
		return a.counts, err
	}
	defer func() { _ = f.Close() }() // opened for reading: no data to lose
	if st, err := f.Stat(); err != nil {
		return a.counts, err
	} else if st.Size() < a.offset {
		return a.counts, fmt.Errorf("audit log %s shrank from %d to %d bytes", a.path, a.offset, st.Size())
	}
	if _, err := f.Seek(a.offset, io.SeekStart); err != nil {
		return a.counts, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return a.counts, err
	}
	a.offset += int64(len(data))
	buf := append(a.partial, data...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		if err := a.count(buf[:i]); err != nil {
			return a.counts, err
		}
		buf = buf[i+1:]
	}
	// A line the API server is still writing is kept for the next call.
	a.partial = append([]byte(nil), buf...)
	return a.counts, nil
}

func (a *auditCounter) count(line []byte) error {
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	var ev auditEvent
	if err := json.Unmarshal(line, &ev); err != nil {
		return fmt.Errorf("audit log %s: %w", a.path, err)
	}
	if ev.ObjectRef == nil || (ev.Stage != "ResponseComplete" && ev.Stage != "Panic") {
		return nil
	}
	if ev.User.Username != a.user {
		a.others++
		return nil
	}
	if ev.Stage == "Panic" || ev.ResponseStatus == nil || ev.ResponseStatus.Code >= 400 {
		a.counts.Refused++
		return nil
	}
	switch {
	case ev.ObjectRef.Resource == "events":
		a.counts.Events++
	case ev.ObjectRef.Resource == "segments" && ev.ObjectRef.Subresource == "status":
		a.counts.Status++
	case ev.ObjectRef.Resource == "segments" && ev.ObjectRef.Subresource == "":
		a.counts.Segment++
	}
	return nil
}
