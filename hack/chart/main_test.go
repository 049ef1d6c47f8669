package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
)

func TestSplitImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		image, repo, tag string
		err              bool
	}{
		{image: "ghcr.io/segment-operator/segment-operator:v1.2.3", repo: "ghcr.io/segment-operator/segment-operator", tag: "v1.2.3"},
		{image: "localhost:5000/segment-operator:v1.2.3", repo: "localhost:5000/segment-operator", tag: "v1.2.3"},
		{image: "ghcr.io/x/y@" + digest, repo: "ghcr.io/x/y@" + digest},
		{image: "ghcr.io/x/y:v1@" + digest, repo: "ghcr.io/x/y:v1@" + digest},
		{image: "localhost:5000/segment-operator", err: true},
		{image: "", err: true},
		{image: "a:b\"\n", err: true},
	}
	for _, tc := range tests {
		repo, tag, err := splitImage(tc.image)
		if (err != nil) != tc.err || repo != tc.repo || tag != tc.tag {
			t.Errorf("splitImage(%q) = %q, %q, %v; want %q, %q, error %v", tc.image, repo, tag, err, tc.repo, tc.tag, tc.err)
		}
	}
}

// The package of the real chart: versions stamped, image set, and every other file as it is.
func TestPackage(t *testing.T) {
	out := t.TempDir()
	digest := "sha256:" + strings.Repeat("a", 64)
	path, err := pkg("../../charts/chart", "v1.2.3-rc.1", "ghcr.io/x/segment-operator@"+digest, out)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "segment-operator-1.2.3-rc.1.tgz"); path != want {
		t.Errorf("wrote %s, want %s", path, want)
	}
	chrt, err := loader.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if chrt.Metadata.Version != "1.2.3-rc.1" || chrt.Metadata.AppVersion != "v1.2.3-rc.1" {
		t.Errorf("version %s, appVersion %s", chrt.Metadata.Version, chrt.Metadata.AppVersion)
	}
	image := chrt.Values["manager"].(map[string]any)["image"].(map[string]any)
	if image["repository"] != "ghcr.io/x/segment-operator@"+digest {
		t.Errorf("image %v", image)
	}
	src, err := loader.LoadDir("../../charts/chart")
	if err != nil {
		t.Fatal(err)
	}
	if len(chrt.Templates) != len(src.Templates) || len(chrt.Files) != len(src.Files) || string(chrt.Schema) != string(src.Schema) {
		t.Errorf("package has %d templates, %d files; the chart %d, %d", len(chrt.Templates), len(chrt.Files), len(src.Templates), len(src.Files))
	}

	if _, err := pkg("../../charts/chart", "1.2.3", "ghcr.io/x/y:v1", out); err == nil {
		t.Error("a version without v is taken")
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Errorf("%d files written", len(entries))
	}
}

func TestReleaseValuesByTag(t *testing.T) {
	values, err := os.ReadFile("../../charts/chart/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := releaseValues(values, "ghcr.io/x/segment-operator:v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "    repository: ghcr.io/x/segment-operator\n") || !strings.Contains(string(got), "    tag: \"v1.2.3\"\n") {
		t.Errorf("values.yaml:\n%s", got)
	}
	if _, err := releaseValues(got, "ghcr.io/x/y:v2"); err == nil {
		t.Error("values.yaml whose image lines changed is taken")
	}
}

func TestAmendment(t *testing.T) {
	tests := []struct {
		name     string
		a        amendment
		template string
		want     string
		err      bool
	}{
		{name: "replace", a: amendment{old: "- {{ tpl . $ }}", new: "- {{ tpl . $ | quote }}"},
			template: "args:\n- {{ tpl . $ }}\n", want: "args:\n- {{ tpl . $ | quote }}\n"},
		{name: "not generated", a: amendment{old: "- {{ tpl . $ }}", new: "x"}, template: "args: []\n", err: true},
		{name: "generated twice", a: amendment{old: "a", new: "b"}, template: "a a", err: true},
		{name: "wrap", a: amendment{new: "gt 2 1"}, template: "kind: X\n", want: "{{- if gt 2 1 }}\nkind: X\n{{- end }}\n"},
		{name: "wrapped already", a: amendment{new: "gt 2 1"}, template: "{{- if gt 2 1 }}\nkind: X\n{{- end }}\n", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.a.apply(tc.template)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("apply = %q, %v; want %q, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}
