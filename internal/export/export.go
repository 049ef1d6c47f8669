package export

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// Options say how the exported Segments are written.
type Options struct {
	// Namespace is every Segment's metadata.namespace; empty leaves it out.
	Namespace string
	// CredentialsRef is every Segment's spec.credentialsRef.name; empty leaves it out (the
	// manager's own credentials).
	CredentialsRef string
	// DeletionPolicy is every Segment's spec.deletionPolicy; empty means Orphan, so that
	// deleting an exported Segment never deletes a segment that existed before it.
	DeletionPolicy usersv1alpha1.DeletionPolicy
	// Taken are names no exported Segment may have: those of the Segments already in the
	// namespace, which an apply would otherwise change.
	Taken []string
}

// Item is one Segment to write, and the listed segment it adopts.
type Item struct {
	Segment usersv1alpha1.Segment
	Remote  chatbot.Segment
}

// Skipped is a listed segment left out of the export, and why.
type Skipped struct {
	Remote chatbot.Segment
	// Owner is the Segment ("namespace/name") that already owns it; empty when Reason says
	// why instead.
	Owner string
	// Reason says why it was left out.
	Reason string
}

// Result is what to write, and what was left out, both in a deterministic order: items by
// metadata.name, skipped by remote ID.
type Result struct {
	Items   []Item
	Skipped []Skipped
}

// reservedNames are names no exported Segment gets: kustomization.yaml is the directory
// form's own file.
var reservedNames = []string{"kustomization"}

// Plan decides the Segments to write for the listed segments of one account. owned maps
// the IDs that Segments in the cluster already own (in this account) to their owner,
// "namespace/name".
func Plan(listed []chatbot.Segment, owned map[string]string, opts Options) Result {
	policy := cmp.Or(opts.DeletionPolicy, usersv1alpha1.DeletionPolicyOrphan)
	var res Result
	var keep []chatbot.Segment
	for _, s := range listed {
		if owner, ok := owned[s.ID]; ok {
			res.Skipped = append(res.Skipped, Skipped{Remote: s, Owner: owner, Reason: "managed by Segment " + owner})
			continue
		}
		if reason := refusal(s); reason != "" {
			res.Skipped = append(res.Skipped, Skipped{Remote: s, Reason: reason})
			continue
		}
		keep = append(keep, s)
	}
	slices.SortFunc(res.Skipped, func(a, b Skipped) int { return cmp.Compare(a.Remote.ID, b.Remote.ID) })

	names := uniqueNames(keep, append(slices.Clone(opts.Taken), reservedNames...))
	for _, s := range keep {
		seg := usersv1alpha1.Segment{
			TypeMeta:   metav1.TypeMeta{APIVersion: usersv1alpha1.GroupVersion.String(), Kind: "Segment"},
			ObjectMeta: metav1.ObjectMeta{Name: names[s.ID], Namespace: opts.Namespace},
			Spec:       usersv1alpha1.SegmentSpec{ID: s.ID, Name: s.Name, DeletionPolicy: policy},
		}
		if opts.CredentialsRef != "" {
			seg.Spec.CredentialsRef = &usersv1alpha1.CredentialsReference{Name: opts.CredentialsRef}
		}
		res.Items = append(res.Items, Item{Segment: seg, Remote: s})
	}
	slices.SortFunc(res.Items, func(a, b Item) int { return cmp.Compare(a.Segment.Name, b.Segment.Name) })
	return res
}

// idPattern is what the CRD accepts in spec.id.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)

// refusal says why the CRD's validation would refuse a Segment adopting s as listed, or
// "". The checks are the CRD's own (spec.id's pattern, spec.name's length, control and
// blank characters): an export that the API server refuses in part is not ready to commit.
func refusal(s chatbot.Segment) string {
	switch {
	case !idPattern.MatchString(s.ID):
		return "its ID is not 1 to 64 letters and digits, as spec.id must be"
	case s.Name == "":
		// The listing has no name: spec.name would default to metadata.name, and the
		// operator would rename the segment.
		return "it has no name"
	case len(s.Name) > 256:
		return "its name is over 256 bytes, the most spec.name may have"
	case strings.ContainsFunc(s.Name, unicode.IsControl):
		return "its name holds control characters, which spec.name may not"
	case !strings.ContainsFunc(s.Name, func(r rune) bool {
		return !unicode.IsSpace(r) && !unicode.In(r, unicode.Z, unicode.Cc, unicode.Cf)
	}):
		return "its name is blank, which spec.name may not be"
	case !utf8.ValidString(s.Name):
		return "its name is not valid UTF-8"
	}
	return ""
}

// maxName is the longest metadata.name: a DNS-1123 subdomain.
const maxName = validation.DNS1123SubdomainMaxLength

// Name returns the metadata.name made from a segment's name: lowercase ASCII letters and
// digits, accents dropped ("Café" is "cafe"), every other run of characters a '-' (a single
// '.' between letters or digits is kept), trimmed to 253 characters, and "segment" when
// nothing is left. It is a DNS-1123 subdomain, unique only with uniqueNames.
func Name(name string) string {
	var b strings.Builder
	run := ""
	for _, r := range norm.NFKD.String(strings.ToLower(name)) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if b.Len() > 0 && run != "" {
				if run == "." {
					b.WriteByte('.')
				} else {
					b.WriteByte('-')
				}
			}
			run = ""
			b.WriteRune(r)
		case unicode.Is(unicode.Mn, r):
			// a combining mark that NFKD split from its letter: drop it with the accent
		default:
			run += string(r)
		}
	}
	return cmp.Or(trim(b.String(), maxName), "segment")
}

// trim cuts s to at most n bytes (s is ASCII) and removes what a DNS-1123 subdomain may
// not end with.
func trim(s string, n int) string {
	return strings.TrimRight(s[:min(len(s), n)], "-.")
}

// uniqueNames gives each segment a metadata.name that no other and nothing in taken has.
// Segments are taken oldest first (then by ID), so the result does not depend on the order
// of the listing: the oldest of those sharing a name keeps it, and the others get a suffix
// of their ID, longer until it is unique.
func uniqueNames(segs []chatbot.Segment, taken []string) map[string]string {
	segs = slices.Clone(segs)
	slices.SortFunc(segs, func(a, b chatbot.Segment) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt.Time), cmp.Compare(a.ID, b.ID))
	})
	used := map[string]bool{}
	for _, n := range taken {
		used[n] = true
	}
	names := make(map[string]string, len(segs))
	var rest []chatbot.Segment
	for _, s := range segs {
		if base := Name(s.Name); !used[base] {
			used[base], names[s.ID] = true, base
		} else {
			rest = append(rest, s)
		}
	}
	for _, s := range rest {
		base, id := Name(s.Name), strings.ToLower(s.ID)
		name := ""
		for n := min(6, len(id)); n <= len(id) && (name == "" || used[name]); n++ {
			name = suffixed(base, id[len(id)-n:])
		}
		for i := 2; used[name]; i++ {
			// IDs that differ only in case: the listing's IDs are unique, their lowercase
			// forms need not be.
			name = suffixed(base, fmt.Sprintf("%s-%d", id, i))
		}
		used[name], names[s.ID] = true, name
	}
	return names
}

// suffixed returns base, cut short enough, "-" and suffix.
func suffixed(base, suffix string) string {
	base = trim(base, maxName-1-len(suffix))
	if base == "" {
		return trim(suffix, maxName)
	}
	return base + "-" + suffix
}
