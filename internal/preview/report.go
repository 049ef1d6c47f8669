package preview

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Summary counts the changes by kind: the closing line of a plan.
type Summary struct {
	Create   int `json:"create"`
	Adopt    int `json:"adopt"`
	Rename   int `json:"rename"`
	Add      int `json:"add"`
	Recreate int `json:"recreate"`
	Delete   int `json:"delete"`
	Orphan   int `json:"orphan"`
	Refused  int `json:"refused"`
	Conflict int `json:"conflict"`
	Stalled  int `json:"stalled"`
	Unknown  int `json:"unknown"`
	// Unchanged counts the Segments with nothing to do (none, notRemovable).
	Unchanged int `json:"unchanged"`
}

// Summarize counts changes.
func Summarize(changes []Change) Summary {
	var s Summary
	for _, c := range changes {
		switch c.Kind {
		case KindCreate:
			s.Create++
		case KindAdopt:
			s.Adopt++
		case KindRename:
			s.Rename++
		case KindAdd:
			s.Add++
		case KindRecreate:
			s.Recreate++
		case KindDelete:
			s.Delete++
		case KindOrphan:
			s.Orphan++
		case KindRefused:
			s.Refused++
		case KindConflict:
			s.Conflict++
		case KindStalled:
			s.Stalled++
		case KindUnknown:
			s.Unknown++
		default:
			s.Unchanged++
		}
	}
	return s
}

// Changes counts the changes that change something (Kind.Changes).
func (s Summary) Changes() int {
	return s.Create + s.Adopt + s.Rename + s.Add + s.Recreate + s.Delete + s.Orphan
}

// String is the closing line, in the style of terraform plan: "Plan: 1 to create, 1 to
// rename; 1 refused; 2 unchanged.", or "No changes; 3 unchanged.". Counts of zero are left
// out.
func (s Summary) String() string {
	counts := func(pairs ...any) []string {
		var out []string
		for i := 0; i < len(pairs); i += 2 {
			if n := pairs[i].(int); n > 0 {
				out = append(out, fmt.Sprintf("%d %s", n, pairs[i+1]))
			}
		}
		return out
	}
	head := "No changes"
	if changes := counts(s.Create, "to create", s.Adopt, "to adopt", s.Rename, "to rename", s.Add, "to add members to",
		s.Recreate, "to recreate", s.Delete, "to delete", s.Orphan, "to orphan"); len(changes) > 0 {
		head = "Plan: " + strings.Join(changes, ", ")
	}
	groups := []string{head}
	if problems := counts(s.Refused, "refused", s.Conflict, "in conflict", s.Stalled, "stalled", s.Unknown, "unknown"); len(problems) > 0 {
		groups = append(groups, strings.Join(problems, ", "))
	}
	groups = append(groups, fmt.Sprintf("%d unchanged", s.Unchanged))
	return strings.Join(groups, "; ") + "."
}

// Report is a whole plan: plan -o json writes it.
type Report struct {
	// Changes are sorted by namespace and name.
	Changes []Change `json:"changes"`
	Summary Summary  `json:"summary"`
	// Notes say what the plan as a whole could not see (admission not checked).
	Notes []string `json:"notes,omitempty"`
}

// NewReport sorts the changes and sums them up.
func NewReport(changes []Change, notes ...string) Report {
	changes = slices.Clone(changes)
	slices.SortStableFunc(changes, func(a, b Change) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	if changes == nil {
		changes = []Change{}
	}
	return Report{Changes: changes, Summary: Summarize(changes), Notes: notes}
}

// WriteText writes the report as plan prints it: a line per Segment (Change.Line), its
// notes indented under it, the report's notes, then the summary.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, c := range r.Changes {
		b.WriteString(c.Line() + "\n")
		for _, n := range c.Notes {
			b.WriteString("    note: " + n + "\n")
		}
	}
	if len(r.Changes) > 0 {
		b.WriteString("\n")
	}
	for _, n := range r.Notes {
		b.WriteString("Note: " + n + "\n")
	}
	b.WriteString(r.Summary.String() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}
