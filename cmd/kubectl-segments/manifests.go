package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// manifest is a Segment of the files, as typed and as written (the server-side dry run
// applies what was written), and where it came from.
type manifest struct {
	seg    *usersv1alpha1.Segment
	object *unstructured.Unstructured
	from   string
}

// manifests are the objects plan reads: Segments, and the ConfigMaps their
// spec.membersFrom may name.
type manifests struct {
	segments   []manifest
	configMaps []*corev1.ConfigMap
}

// readFiles reads every file of paths (a directory: its .yaml, .yml and .json files, not
// its kustomization.yaml, and those of its subdirectories).
func (m *manifests) readFiles(paths []string) error {
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir():
				return nil
			case path != p && (!manifestFile(path) || isKustomization(path)):
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return m.read(path, b)
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
	}
	return nil
}

func manifestFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func isKustomization(path string) bool {
	switch filepath.Base(path) {
	case "kustomization.yaml", "kustomization.yml", "Kustomization":
		return true
	}
	return false
}

// readKustomization reads what kustomize builds from dir.
func (m *manifests) readKustomization(dir string) error {
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	b, err := res.AsYaml()
	if err != nil {
		return fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return m.read("kustomize build "+dir, b)
}

// read reads the documents of one file (YAML, one or more documents, or JSON; a List's
// items count as documents). Any object but a Segment or a ConfigMap is an error that
// names the file and the kind.
func (m *manifests) read(from string, b []byte) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for n := 1; ; n++ {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("%s: document %d: %w", from, n, err)
		}
		if obj == nil {
			continue // an empty document
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.IsList() {
			err := u.EachListItem(func(item runtime.Object) error { return m.add(from, n, item.(*unstructured.Unstructured)) })
			if err != nil {
				return err
			}
			continue
		}
		if err := m.add(from, n, u); err != nil {
			return err
		}
	}
}

func (m *manifests) add(from string, n int, u *unstructured.Unstructured) error {
	where := fmt.Sprintf("%s: document %d", from, n)
	gvk := u.GroupVersionKind()
	switch {
	case gvk == usersv1alpha1.GroupVersion.WithKind("Segment"):
		seg := &usersv1alpha1.Segment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, seg); err != nil {
			return fmt.Errorf("%s: Segment %q: %w", where, u.GetName(), err)
		}
		if seg.Name == "" {
			return fmt.Errorf("%s: a Segment without metadata.name", where)
		}
		m.segments = append(m.segments, manifest{seg: seg, object: u, from: from})
	case gvk == corev1.SchemeGroupVersion.WithKind("ConfigMap"):
		cm := &corev1.ConfigMap{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, cm); err != nil {
			return fmt.Errorf("%s: ConfigMap %q: %w", where, u.GetName(), err)
		}
		m.configMaps = append(m.configMaps, cm)
	case gvk.Kind == "":
		return fmt.Errorf("%s is not a Kubernetes object (no kind): plan reads Segments (%s)", where, usersv1alpha1.GroupVersion)
	default:
		return fmt.Errorf("%s is a %s (%s), not a Segment (%s): plan reads Segments, and the ConfigMaps they read members from",
			where, gvk.Kind, gvk.GroupVersion(), usersv1alpha1.GroupVersion)
	}
	return nil
}

// defaultNamespace gives every object without a namespace ns, and refuses a Segment named
// twice.
func (m *manifests) defaultNamespace(ns string) error {
	seen := map[string]string{}
	for _, s := range m.segments {
		if s.seg.Namespace == "" {
			s.seg.Namespace = ns
			s.object.SetNamespace(ns)
		}
		key := s.seg.Namespace + "/" + s.seg.Name
		if prev, ok := seen[key]; ok {
			return fmt.Errorf("Segment %s is in %s and in %s", key, prev, s.from)
		}
		seen[key] = s.from
	}
	for _, cm := range m.configMaps {
		if cm.Namespace == "" {
			cm.Namespace = ns
		}
	}
	return nil
}
