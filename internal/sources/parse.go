package sources

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/text"
)

// MaxKeyBytes bounds what one membersFrom key may hold once decompressed. 120,000 IDs of
// 24 characters (ChatBot's) and their line ends take 3 MB.
const MaxKeyBytes = 4 << 20

// maxLine bounds a line: an ID has at most 64 characters, the rest may only be spaces.
const maxLine = 4 << 10

// userID is what the API takes as a user ID, as spec.members' validation says.
var userID = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)

// idCost is what the manager holds of an ID besides its text, while a Segment's sources
// are read: its string header in a slice (16 bytes) and its entry in the set of members
// (some 20 to 40).
const idCost = 48

// errTooLarge is a key that holds more than MaxKeyBytes; errOverBudget, a key that weighs
// more than the weight it was read with (see parse).
var (
	errTooLarge   = errors.New("too large")
	errOverBudget = errors.New("over budget")
)

// parse returns the IDs that key of cm lists, and their weight: the bytes the key holds
// once decompressed, and idCost more for each ID. One ID per line, in data, or gzip in
// binaryData. Blank lines and spaces around an ID are skipped; anything else that is not a
// user ID is an error naming the ConfigMap, key and line, and no ID of the key is
// returned. It reads no more than MaxKeyBytes+1 bytes of the key (past MaxKeyBytes, the
// error wraps errTooLarge), and stops at the first line that takes the weight past limit
// (the error wraps errOverBudget).
func parse(cm *corev1.ConfigMap, key string, limit int64) ([]string, int64, error) {
	where := fmt.Sprintf("ConfigMap %q, key %q", cm.Name, key)
	var raw io.Reader
	if s, ok := cm.Data[key]; ok {
		raw = strings.NewReader(s)
	} else if b, ok := cm.BinaryData[key]; ok {
		z, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, 0, fmt.Errorf("%s: binaryData must be gzip-compressed text: %w", where, err)
		}
		raw = z
	} else {
		return nil, 0, fmt.Errorf("%s: no such key in data or binaryData", where)
	}
	in := &counter{r: io.LimitReader(raw, MaxKeyBytes+1)}
	lines := bufio.NewScanner(in)
	lines.Buffer(make([]byte, 0, maxLine), maxLine)
	var consumed int64 // the bytes of the lines scanned, their ends included
	lines.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		advance, token, err := bufio.ScanLines(data, atEOF)
		consumed += int64(advance)
		return advance, token, err
	})
	var (
		ids []string
		err error
		n   int
	)
	weight := func() int64 { return consumed + idCost*int64(len(ids)) }
	for n = 1; err == nil && lines.Scan(); n++ {
		id := bytes.TrimSpace(lines.Bytes())
		switch {
		case len(id) == 0:
		case !userID.Match(id):
			err = fmt.Errorf("%s, line %d: %q is not a ChatBot user ID (1 to 64 letters and digits)", where, n, text.Cut(string(id), 80))
		case len(ids) == usersv1alpha1.MaxMembers:
			err = fmt.Errorf("%s: more than %d IDs (a Segment may have at most %d members)", where,
				usersv1alpha1.MaxMembers, usersv1alpha1.MaxMembers)
		default:
			ids = append(ids, string(id))
		}
		if err == nil && weight() > limit {
			err = fmt.Errorf("%s: more than %d bytes with its IDs: %w", where, limit, errOverBudget)
		}
	}
	switch {
	case in.n > MaxKeyBytes: // first: a key cut short at the limit may end in half a line
		return nil, 0, fmt.Errorf("%s: more than %d bytes of IDs: %w", where, MaxKeyBytes, errTooLarge)
	case err != nil:
		return nil, 0, err
	case errors.Is(lines.Err(), bufio.ErrTooLong):
		return nil, 0, fmt.Errorf("%s, line %d: longer than %d bytes", where, n, maxLine)
	case lines.Err() != nil:
		return nil, 0, fmt.Errorf("%s: %w", where, lines.Err())
	}
	return ids, weight(), nil
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
