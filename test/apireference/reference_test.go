// Package apireference checks docs/api-reference.md, which `make manifests` generates from
// the Go types under api/ (crd-ref-docs, configured in hack/crd-ref-docs/), against the CRD
// that the same target writes: every property of the CRD's schema, spec and status and
// everything nested in them, has its row in the reference, under the type the row above
// it links to, marked required exactly when the CRD requires it; and the reference shows
// no field the CRD lacks. When it fails after a change under api/, run `make manifests`
// and commit what it writes. There is no code here, only tests.
package apireference

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

const (
	referencePath = "../../docs/api-reference.md"
	crdPath       = "../../config/crd/bases/users.chatbot.com_segments.yaml"
)

// crd is the part of a CustomResourceDefinition the reference documents.
type crd struct {
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Schema struct {
				OpenAPIV3Schema *schema `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// schema is an OpenAPI v3 schema, as far as its field names go.
type schema struct {
	Properties map[string]*schema `json:"properties"`
	Items      *schema            `json:"items"`
	Required   []string           `json:"required"`
}

// reference is docs/api-reference.md read back: the field table of each type, by group
// version ("users.chatbot.com/v1alpha1") and by the anchor GitHub gives the type's
// heading (its name in lower case), which is what the tables' type links point to.
type reference map[string]map[string]fieldTable

// fieldTable is the table of a type's fields, by field name.
type fieldTable map[string]fieldRow

// fieldRow is one field: whether it is marked required, and where its type links to: an
// anchor of this file ("#segmentspec"), the Kubernetes API reference, or nowhere ("").
type fieldRow struct {
	required bool
	link     string
}

var (
	fieldHeader = regexp.MustCompile(`^\|\s*Field\s*\|`)
	fieldName   = regexp.MustCompile("^`([^`]+)`")
	typeLink    = regexp.MustCompile(`\]\(([^)]+)\)`)
)

// parseReference reads the headings and field tables of the reference; enum value tables
// and prose are skipped.
func parseReference(markdown string) reference {
	ref := reference{}
	var gv string
	var table fieldTable
	inFields := false
	for line := range strings.Lines(markdown) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "## "):
			gv = strings.TrimSpace(line[3:])
			ref[gv] = map[string]fieldTable{}
			table, inFields = nil, false
		case strings.HasPrefix(line, "### ") && gv != "":
			table = fieldTable{}
			ref[gv][strings.ToLower(strings.TrimSpace(line[4:]))] = table
			inFields = false
		case fieldHeader.MatchString(line):
			inFields = table != nil
		case !strings.HasPrefix(line, "|"):
			inFields = false
		case inFields:
			cells := splitRow(line)
			m := fieldName.FindStringSubmatch(cells[0])
			if m == nil {
				continue // the header's separator row
			}
			row := fieldRow{required: strings.Contains(cells[0], "_required_")}
			if len(cells) > 1 {
				if l := typeLink.FindStringSubmatch(cells[1]); l != nil {
					row.link = l[1]
				}
			}
			table[m[1]] = row
		}
	}
	return ref
}

// splitRow splits a table row into its trimmed cells; a pipe escaped as \| is text.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	var cells []string
	var cell strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cell.WriteString(`\|`)
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cell.String()))
}

// compare walks the schema of a kind from the type of that name in the reference, and
// returns, by field path, where the two differ. A field whose type links outside the
// reference (to the Kubernetes API reference: metadata, conditions) is not descended into.
func compare(root *schema, kind string, types map[string]fieldTable) []string {
	table, ok := types[strings.ToLower(kind)]
	if !ok {
		return []string{fmt.Sprintf("%s: no section for the kind", kind)}
	}
	var diffs []string
	var walk func(path string, node *schema, table fieldTable)
	walk = func(path string, node *schema, table fieldTable) {
		for _, name := range slices.Sorted(maps.Keys(node.Properties)) {
			p := name
			if path != "" {
				p = path + "." + name
			}
			row, ok := table[name]
			if !ok {
				diffs = append(diffs, p+": in the CRD, not in the reference")
				continue
			}
			switch required := slices.Contains(node.Required, name); {
			case required && !row.required:
				diffs = append(diffs, p+": required in the CRD, not in the reference "+
					"(a field without omitempty is required: mark it // +required)")
			case !required && row.required:
				diffs = append(diffs, p+": required in the reference, not in the CRD")
			}
			child := node.Properties[name]
			if len(child.Properties) == 0 && child.Items != nil {
				child, p = child.Items, p+"[]"
			}
			if len(child.Properties) == 0 {
				continue
			}
			switch {
			case strings.HasPrefix(row.link, "#"):
				nested, ok := types[strings.TrimPrefix(row.link, "#")]
				if !ok {
					diffs = append(diffs, fmt.Sprintf("%s: its type links to %s, which is not in the reference", p, row.link))
					continue
				}
				walk(p, child, nested)
			case row.link == "":
				diffs = append(diffs, p+": has fields in the CRD, and no type in the reference that shows them")
			}
		}
		for _, name := range slices.Sorted(maps.Keys(table)) {
			if _, ok := node.Properties[name]; !ok {
				p := name
				if path != "" {
					p = path + "." + name
				}
				diffs = append(diffs, p+": in the reference, not in the CRD")
			}
		}
	}
	walk("", root, table)
	return diffs
}

// The reference documents every field of the CRD that `make manifests` wrote with it.
func TestReferenceMatchesCRD(t *testing.T) {
	data, err := os.ReadFile(crdPath)
	if err != nil {
		t.Fatal(err)
	}
	var c crd
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", crdPath, err)
	}
	if len(c.Spec.Versions) == 0 {
		t.Fatalf("%s has no versions", crdPath)
	}
	md, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v: run `make manifests`, which writes it", err)
	}
	ref := parseReference(string(md))
	for _, v := range c.Spec.Versions {
		gv := c.Spec.Group + "/" + v.Name
		types, ok := ref[gv]
		if !ok {
			t.Errorf("%s documents no %s: run `make manifests` and commit what it writes", referencePath, gv)
			continue
		}
		if v.Schema.OpenAPIV3Schema == nil {
			t.Errorf("%s: version %s has no schema", crdPath, v.Name)
			continue
		}
		if diffs := compare(v.Schema.OpenAPIV3Schema, c.Spec.Names.Kind, types); len(diffs) > 0 {
			t.Errorf("%s is not in step with %s (%s): run `make manifests` and commit what it writes.\n  %s",
				referencePath, crdPath, gv, strings.Join(diffs, "\n  "))
		}
	}
}

// thingReference is the reference of a kind Thing with a spec (a ThingSpec, whose items are
// Items) and a status, its conditions linked to the Kubernetes API reference.
const thingReference = "# API reference\n\n## example.com/v1\n\n" +
	"### Thing\n\nA thing.\n\n" +
	"| Field | Type | Description | Validation |\n| --- | --- | --- | --- |\n" +
	"| `apiVersion` | string | `example.com/v1` | |\n" +
	"| `kind` | string | `Thing` | |\n" +
	"| `spec` | [ThingSpec](#thingspec) | spec is it. | |\n" +
	"| `status` | [ThingStatus](#thingstatus) | status is it. | Default: `{\"a\":1}` |\n\n" +
	"### ThingSpec\n\n" +
	"| Field | Type | Description | Validation |\n| --- | --- | --- | --- |\n" +
	"| `name` | string | name, a \\| b. | Pattern: `^(a\\|b)$` |\n" +
	"| `items` | [Item](#item) array | items. | |\n\n" +
	"### ThingStatus\n\n" +
	"| Field | Type | Description | Validation |\n| --- | --- | --- | --- |\n" +
	"| `conditions` | [Condition](https://kubernetes.io/docs/reference/generated/kubernetes-api/v1.37/#condition-v1-meta) array | c. | |\n\n" +
	"### Item\n\n" +
	"| Field | Type | Description | Validation |\n| --- | --- | --- | --- |\n" +
	"| `key`<br />_required_ | string | key. | |\n\n" +
	"### Mode\n\nUnderlying type: string.\n\n" +
	"| Value | Description |\n| --- | --- |\n" +
	"| `Fast` | Fast. |\n"

// thingSchema is the schema thingReference documents.
const thingSchema = `
properties:
  apiVersion: {type: string}
  kind: {type: string}
  spec:
    properties:
      name: {type: string}
      items:
        items:
          properties:
            key: {type: string}
          required: [key]
  status:
    properties:
      conditions:
        items:
          properties:
            type: {type: string}
            lastTransitionTime: {type: string}
`

func TestParseReference(t *testing.T) {
	want := reference{"example.com/v1": {
		"thing": {
			"apiVersion": {},
			"kind":       {},
			"spec":       {link: "#thingspec"},
			"status":     {link: "#thingstatus"},
		},
		"thingspec": {"name": {}, "items": {link: "#item"}},
		"thingstatus": {"conditions": {
			link: "https://kubernetes.io/docs/reference/generated/kubernetes-api/v1.37/#condition-v1-meta",
		}},
		"item": {"key": {required: true}},
		"mode": {},
	}}
	if d := cmp.Diff(want, parseReference(thingReference), cmp.AllowUnexported(fieldRow{})); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name       string
		schema     string            // thingSchema if empty
		edit       map[string]string // replacements in thingReference
		kind, want string            // kind Thing if empty; want one diff per line
	}{
		{name: "in step"},
		{
			name: "field added to spec",
			schema: strings.Replace(thingSchema, "      name: {type: string}",
				"      name: {type: string}\n      suspend: {type: boolean}", 1),
			want: "spec.suspend: in the CRD, not in the reference",
		},
		{
			name: "field added to a nested type",
			schema: strings.Replace(thingSchema, "            key: {type: string}",
				"            key: {type: string}\n            value: {type: string}", 1),
			want: "spec.items[].value: in the CRD, not in the reference",
		},
		{
			name: "field removed",
			edit: map[string]string{"| `name` | string | name, a \\| b. | Pattern: `^(a\\|b)$` |\n": ""},
			want: "spec.name: in the CRD, not in the reference",
		},
		{
			name: "field only in the reference",
			edit: map[string]string{"| `kind` | string | `Thing` | |\n": "| `kind` | string | `Thing` | |\n| `extra` | string | x | |\n"},
			want: "extra: in the reference, not in the CRD",
		},
		{
			name: "required only in the CRD",
			edit: map[string]string{"| `key`<br />_required_ |": "| `key` |"},
			want: "spec.items[].key: required in the CRD, not in the reference " +
				"(a field without omitempty is required: mark it // +required)",
		},
		{
			name: "required only in the reference",
			edit: map[string]string{"| `name` |": "| `name`<br />_required_ |"},
			want: "spec.name: required in the reference, not in the CRD",
		},
		{
			name: "nested type missing",
			edit: map[string]string{"### Item\n": "### Other\n"},
			want: "spec.items[]: its type links to #item, which is not in the reference",
		},
		{
			name: "nested type not linked",
			edit: map[string]string{"[Item](#item) array": "Item array"},
			want: "spec.items[]: has fields in the CRD, and no type in the reference that shows them",
		},
		{name: "kind missing", kind: "Other", want: "Other: no section for the kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.schema
			if s == "" {
				s = thingSchema
			}
			var root schema
			if err := yaml.Unmarshal([]byte(s), &root); err != nil {
				t.Fatal(err)
			}
			md := thingReference
			for old, repl := range tc.edit {
				if !strings.Contains(md, old) {
					t.Fatalf("the reference has no %q", old)
				}
				md = strings.Replace(md, old, repl, 1)
			}
			kind := tc.kind
			if kind == "" {
				kind = "Thing"
			}
			var want []string
			if tc.want != "" {
				want = strings.Split(tc.want, "\n")
			}
			if d := cmp.Diff(want, compare(&root, kind, parseReference(md)["example.com/v1"])); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
