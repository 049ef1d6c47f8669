package controller

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/text"
)

// maxSourceBytes bounds what one membersFrom key may hold once decompressed: a gzip of a
// few KiB could otherwise expand to gigabytes in the manager. 100,000 IDs of 24 characters
// (ChatBot's) and their line ends take 2.5 MB.
const maxSourceBytes = 4 << 20

// sourceReadTimeout bounds one read of a membersFrom ConfigMap shared by many reconciles.
const sourceReadTimeout = 30 * time.Second

// userID is what the API takes as a user ID, as spec.members' validation says.
var userID = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)

// desiredMembers returns the Segment's members: spec.members and the IDs of every
// spec.membersFrom source together, sorted, each once. Any source it cannot read, or the
// members beyond MaxMembers, stop the Segment (MembersSourceError): adding only some of
// the members would be a partial truth no later fix could take back (the API removes none).
func (r *SegmentReconciler) desiredMembers(ctx context.Context, seg *usersv1alpha1.Segment) ([]string, error) {
	if len(seg.Spec.MembersFrom) == 0 {
		return seg.Spec.Members, nil // sorted and unique already (listType=set)
	}
	members := sets.New(seg.Spec.Members...)
	for _, src := range seg.Spec.MembersFrom {
		ids, err := r.readSource(ctx, seg.Namespace, src)
		if bad := (*sourceError)(nil); errors.As(err, &bad) {
			return nil, stall(usersv1alpha1.ReasonMembersSourceError, "%s", bad.Error())
		} else if err != nil {
			return nil, err // the API server's (a timeout, a throttle): retried with backoff
		}
		members.Insert(ids...)
	}
	if members.Len() > usersv1alpha1.MaxMembers {
		return nil, stall(usersv1alpha1.ReasonMembersSourceError, "spec.members and spec.membersFrom name %d members "+
			"together; a Segment may have at most %d", members.Len(), usersv1alpha1.MaxMembers)
	}
	return sets.List(members), nil
}

// sourceError is a membersFrom source the Segment cannot use until it is fixed: missing,
// unlabelled, without the key, or with a line that is not an ID.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }

// readSource reads the IDs of one membersFrom source. The cache holds only the metadata of
// labelled ConfigMaps (any editor may label a ConfigMap of 1 MiB, and many): the data is
// read from the API server, once for concurrent readers, and parsed only when the
// ConfigMap changed since it was last read (see sourceMemo).
func (r *SegmentReconciler) readSource(ctx context.Context, ns string, src usersv1alpha1.MembersSource) ([]string, error) {
	key := client.ObjectKey{Namespace: ns, Name: src.ConfigMap}
	notFound := &sourceError{fmt.Errorf("ConfigMap %q named by spec.membersFrom not found in namespace %q (it must exist "+
		"and carry the label %s=true)", src.ConfigMap, ns, usersv1alpha1.MembersLabel)}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	err := r.Get(ctx, key, meta)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && meta.Labels[usersv1alpha1.MembersLabel] != "true"):
		return nil, notFound
	case err != nil:
		return nil, fmt.Errorf("read ConfigMap %q: %w", src.ConfigMap, err)
	}
	if ids, err, ok := r.sources.get(key.String(), meta.UID, meta.ResourceVersion, src.Key); ok {
		return ids, err
	}
	// Shared only by readers that saw the same version: one that saw a newer version than a
	// read under way began with must not take that read's older answer.
	v, err, _ := r.sourceReads.Do(key.String()+"@"+string(meta.UID)+"/"+meta.ResourceVersion, func() (any, error) {
		// The read serves every reader waiting for it: one reader's cancellation must not
		// fail the others (as an account's shared listing, remote.Observations.Refresh).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sourceReadTimeout)
		defer cancel()
		cm := &corev1.ConfigMap{}
		return cm, r.sourceReader.Get(rctx, key, cm)
	})
	cm := v.(*corev1.ConfigMap)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && cm.Labels[usersv1alpha1.MembersLabel] != "true"):
		return nil, notFound
	case err != nil:
		return nil, fmt.Errorf("read ConfigMap %q: %w", src.ConfigMap, err)
	}
	ids, err := parseSource(cm, src.Key)
	if err != nil {
		err = &sourceError{err}
	}
	r.sources.put(key.String(), cm.UID, cm.ResourceVersion, src.Key, ids, err)
	return ids, err
}

// parseSource returns the IDs that key of cm lists: one per line, in data, or gzip in
// binaryData. Blank lines and spaces around an ID are skipped; anything else that is not a
// user ID is an error naming the ConfigMap, key and line, and no ID of the key is returned.
func parseSource(cm *corev1.ConfigMap, key string) ([]string, error) {
	where := fmt.Sprintf("ConfigMap %q, key %q", cm.Name, key)
	var raw io.Reader
	if s, ok := cm.Data[key]; ok {
		raw = bytes.NewReader([]byte(s))
	} else if b, ok := cm.BinaryData[key]; ok {
		z, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: binaryData must be gzip-compressed text: %w", where, err)
		}
		raw = z
	} else {
		return nil, fmt.Errorf("%s: no such key in data or binaryData", where)
	}
	b, err := io.ReadAll(io.LimitReader(raw, maxSourceBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if len(b) > maxSourceBytes {
		return nil, fmt.Errorf("%s: more than %d bytes of IDs", where, maxSourceBytes)
	}
	var ids []string
	lines := bufio.NewScanner(bytes.NewReader(b))
	lines.Buffer(make([]byte, 0, 4096), maxSourceBytes)
	for n := 1; lines.Scan(); n++ {
		id := string(bytes.TrimSpace(lines.Bytes()))
		switch {
		case id == "":
		case !userID.MatchString(id):
			return nil, fmt.Errorf("%s, line %d: %q is not a ChatBot user ID (1 to 64 letters and digits)", where, n, text.Cut(id, 80))
		case len(ids) == usersv1alpha1.MaxMembers:
			return nil, fmt.Errorf("%s: more than %d IDs (a Segment may have at most %d members)", where,
				usersv1alpha1.MaxMembers, usersv1alpha1.MaxMembers)
		default:
			ids = append(ids, id)
		}
	}
	if err := lines.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return ids, nil
}

// indexMembersFrom names the ConfigMaps a Segment reads its members from.
const indexMembersFrom = "spec.membersFrom.configMap"

func indexByMembersFrom(o client.Object) []string {
	var names []string
	for _, src := range o.(*usersv1alpha1.Segment).Spec.MembersFrom {
		if !slices.Contains(names, src.ConfigMap) {
			names = append(names, src.ConfigMap)
		}
	}
	return names
}
