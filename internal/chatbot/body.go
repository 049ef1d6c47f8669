package chatbot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Caps on what the client reads of a response, so that no answer (a huge listing, a
// megabyte error message, whatever answers on the API's address) exhausts the manager's
// memory or outgrows the places its text reaches.
const (
	// MaxListingBytes bounds a listing: about 100,000 segments with ordinary names. A
	// larger one is refused with a retryable *APIError.
	MaxListingBytes = 16 << 20
	// maxResponseBytes bounds every other response, error bodies included; what is past
	// it is not read.
	maxResponseBytes = 64 << 10
	// maxErrorMessage bounds APIError.Message, which reaches conditions, events and logs
	// (the API server refuses an event note over 1 KiB).
	maxErrorMessage = 512
)

// errTooLarge is what a cappedReader returns past its cap.
var errTooLarge = errors.New("response over its size cap")

// cappedReader reads at most left bytes of r; one more is errTooLarge. It keeps the first
// error of r (not EOF) or its own, so that a decoder's failure can be told from a read's.
type cappedReader struct {
	r    io.Reader
	left int64
	err  error
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		var one [1]byte
		if n, _ := io.ReadFull(c.r, one[:]); n > 0 {
			c.err = errTooLarge
			return 0, c.err
		}
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), c.left)]
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}

// listDecoder decodes a listing one segment at a time, so that the memory a listing takes
// is that of the segments, not also of its text.
type listDecoder struct{ out *[]Segment }

func (l listDecoder) decode(r io.Reader) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	switch {
	case errors.Is(err, io.EOF) || err == nil && tok == nil: // an empty body, or null
		return nil
	case err != nil:
		return err
	case tok != json.Delim('['):
		return fmt.Errorf("a listing is a JSON array, not %T", tok)
	}
	for dec.More() {
		var s Segment
		if err := dec.Decode(&s); err != nil {
			return err
		}
		*l.out = append(*l.out, s)
	}
	_, err = dec.Token() // the closing ]
	return err
}
