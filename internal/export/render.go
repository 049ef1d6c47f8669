package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// manifest is a Segment as written: type, name, namespace and spec, and none of what the
// API server fills in (creationTimestamp, status), which a Segment marshals even when
// empty.
type manifest struct {
	APIVersion string                    `json:"apiVersion"`
	Kind       string                    `json:"kind"`
	Metadata   metadata                  `json:"metadata"`
	Spec       usersv1alpha1.SegmentSpec `json:"spec"`
}

type metadata struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

func (it Item) manifest() manifest {
	s := it.Segment
	return manifest{APIVersion: s.APIVersion, Kind: s.Kind,
		Metadata: metadata{Name: s.Name, Namespace: s.Namespace}, Spec: s.Spec}
}

// Comment is what the YAML forms write above an item: the listed segment's ID, name, user
// count and creation time, and why spec.members is empty.
func (it Item) Comment() string {
	created := "at an unknown time"
	if !it.Remote.CreatedAt.IsZero() {
		created = it.Remote.CreatedAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("# ChatBot segment %s %q: %d users, created %s.\n"+
		"# Its members cannot be read from the ChatBot API, so spec.members is left empty: members\n"+
		"# listed there are added to the segment, and none is ever removed (the API cannot remove\n"+
		"# one). Keep memberRemovalPolicy Warn: Recreate would replace the segment, and lose them.\n",
		it.Remote.ID, it.Remote.Name, it.Remote.Users, created)
}

// YAML returns the item as a YAML document, its comment first.
func (it Item) YAML() ([]byte, error) {
	b, err := yaml.Marshal(it.manifest())
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", it.Remote.ID, err)
	}
	return append([]byte(it.Comment()), b...), nil
}

// YAML returns every item as one YAML stream, one document each.
func (r Result) YAML() ([]byte, error) {
	var out bytes.Buffer
	for i, it := range r.Items {
		b, err := it.YAML()
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}

// JSON returns the items as a v1 List, indented. JSON has no comments: the caller says
// elsewhere that members were not exported.
func (r Result) JSON() ([]byte, error) {
	list := struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Items      []manifest `json:"items"`
	}{APIVersion: "v1", Kind: "List", Items: []manifest{}}
	for _, it := range r.Items {
		list.Items = append(list.Items, it.manifest())
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// File is one file of the directory form.
type File struct {
	Name string
	Data []byte
}

// KustomizationFile is the directory form's kustomization, listing every other file.
const KustomizationFile = "kustomization.yaml"

// Files returns the directory form: one "<metadata.name>.yaml" per item, sorted by file
// name, then kustomization.yaml listing them, so that `kubectl apply -k` applies them all.
func (r Result) Files() ([]File, error) {
	files := make([]File, 0, len(r.Items)+1)
	kust := struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}{APIVersion: "kustomize.config.k8s.io/v1beta1", Kind: "Kustomization", Resources: []string{}}
	for _, it := range r.Items {
		b, err := it.YAML()
		if err != nil {
			return nil, err
		}
		name := it.Segment.Name + ".yaml"
		files = append(files, File{Name: name, Data: b})
		kust.Resources = append(kust.Resources, name)
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(kust.Resources)
	b, err := yaml.Marshal(kust)
	if err != nil {
		return nil, err
	}
	header := "# Segments exported from a ChatBot account by kubectl segments export. Each adopts\n" +
		"# its remote segment by spec.id: applying them creates no segment in ChatBot.\n"
	return append(files, File{Name: KustomizationFile, Data: append([]byte(header), b...)}), nil
}
