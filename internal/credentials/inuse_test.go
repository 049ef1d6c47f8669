package credentials

import (
	"testing"
)

func TestDecideSecretFinalizer(t *testing.T) {
	for _, tc := range []struct {
		name                            string
		labelled, deleting, has, needed bool
		want                            secretFinalizerChange
	}{
		{name: "needed, not yet held", labelled: true, needed: true, want: addSecretFinalizer},
		{name: "needed and held", labelled: true, has: true, needed: true, want: keepSecretFinalizer},
		{name: "being deleted while needed: held until the Segments are done", labelled: true, deleting: true, has: true, needed: true, want: keepSecretFinalizer},
		{name: "being deleted, needed, not held: no new finalizer on a deleted object", labelled: true, deleting: true, needed: true, want: keepSecretFinalizer},
		{name: "no Segment needs it any more", labelled: true, has: true, want: removeSecretFinalizer},
		{name: "being deleted and no longer needed: let it go", labelled: true, deleting: true, has: true, want: removeSecretFinalizer},
		{name: "label removed: it serves no Segment", has: true, needed: true, want: removeSecretFinalizer},
		{name: "unlabelled, not held", needed: true, want: keepSecretFinalizer},
		{name: "unused, not held", labelled: true, want: keepSecretFinalizer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideSecretFinalizer(tc.labelled, tc.deleting, tc.has, tc.needed); got != tc.want {
				t.Errorf("decideSecretFinalizer = %v, want %v", got, tc.want)
			}
		})
	}
}
