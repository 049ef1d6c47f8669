// Command chart finishes the chart kubebuilder's Helm plugin generates, and packages it for
// a release, with helm's own packages.
//
//	go run ./hack/chart finish -chart charts/chart
//
// runs after the plugin (`make chart`): it copies the optional bundles of config/ into the
// chart's files/ and amends the generated templates the plugin cannot be told about.
//
//	go run ./hack/chart package -version v1.2.3 -image ghcr.io/segment-operator/segment-operator@sha256:... -out dist
//
// writes dist/segment-operator-1.2.3.tgz, the chart's version and appVersion set to the
// release's, its image to the one the release pushed; `helm push` publishes it and
// `helm install` takes it. `make release` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chart finish|package [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("chart", "charts/chart", "the chart's directory")
	var run func() (string, error)
	switch os.Args[1] {
	case "finish":
		config := fs.String("config", "config", "the kustomize tree the chart is generated from")
		run = func() (string, error) { return "", finish(*dir, *config) }
	case "package":
		version := fs.String("version", "", "the release's version, vX.Y.Z[-pre]")
		image := fs.String("image", "", "the manager image the chart installs: repository:tag or repository@sha256:digest")
		out := fs.String("out", "dist", "the directory the package is written into")
		run = func() (string, error) { return pkg(*dir, *version, *image, *out) }
	default:
		fmt.Fprintf(os.Stderr, "chart: no command %q: finish or package\n", os.Args[1])
		os.Exit(2)
	}
	_ = fs.Parse(os.Args[2:])
	out, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
	if out != "" {
		fmt.Println(out)
	}
}

// The optional bundles of config/ (not in dist/install.yaml) the chart's own templates read
// from files/, by their path under config/.
var bundled = []string{
	"prometheus/monitor.yaml", "prometheus/rules.yaml", "prometheus/dashboard.json",
	"network-policy/policy.yaml",
}

// amendment is a change to a template the plugin generated, made after each generation.
type amendment struct {
	file string
	// old is replaced by new; or, with old empty, the template is rendered only when the
	// condition new holds.
	old, new string
	why      string
}

var amendments = []amendment{{
	file: "templates/manager/manager.yaml",
	old:  "{{- toYaml .Values.manager.extraVolumes | nindent 8 }}",
	new:  "{{- tpl (toYaml .Values.manager.extraVolumes) $ | nindent 8 }}",
	why:  "credentials.secretName names the token Secret's volume",
}, {
	file: "templates/manager/manager.yaml",
	old:  "- {{ tpl . $ }}",
	new:  "- {{ tpl . $ | quote }}",
	why:  "a flag is a string, whatever YAML would make of it ('*', 10, true, '# ...')",
}, {
	file: "templates/manager/manager.yaml",
	old:  "{{- range .Values.manager.args }}",
	new:  "{{- range concat .Values.manager.args (.Values.manager.extraArgs | default list) }}",
	why:  "manager.extraArgs adds flags without repeating the list manager.args holds",
}, {
	file: "templates/manager/manager.yaml",
	old:  "- {{ tpl . $ | quote }}\n        {{- end }}\n",
	new: "- {{ tpl . $ | quote }}\n        {{- end }}\n" +
		"        {{- with .Values.shards }}\n" +
		"        - {{ printf \"--watch-label-selector=sharding.fluxcd.io/key notin (%s)\" (join \",\" .) | quote }}\n" +
		"        {{- end }}\n",
	why: "with shards, the main manager takes the Segments of no shard (templates/sharding copies it for each shard)",
}, {
	file: "templates/rbac/credentials-rolebinding.yaml",
	new:  `eq .Values.credentials.namespaces "*"`,
	why:  "access to every namespace's Secrets only where Segments may name one in every namespace",
}, {
	file: "templates/extras/controller-manager.yaml",
	new:  "gt (int .Values.manager.replicas) 1",
	why:  "a PodDisruptionBudget of minAvailable 1 over one replica would block every node drain",
}}

// finish copies the bundles into the chart and makes the amendments.
func finish(dir, config string) error {
	for _, f := range bundled {
		b, err := os.ReadFile(filepath.Join(config, f))
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, "files", f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	for _, a := range amendments {
		path := filepath.Join(dir, a.file)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out, err := a.apply(string(b))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// apply returns the generated template amended, or an error if the plugin no longer
// generates it as the amendment expects.
func (a amendment) apply(template string) (string, error) {
	if a.old == "" {
		if strings.HasPrefix(template, "{{- if "+a.new+" }}") {
			return "", fmt.Errorf("already amended (%s): run the plugin first", a.why)
		}
		return "{{- if " + a.new + " }}\n" + strings.TrimSuffix(template, "\n") + "\n{{- end }}\n", nil
	}
	if n := strings.Count(template, a.old); n != 1 {
		return "", fmt.Errorf("the plugin writes %q %d times, not once: update hack/chart (%s)", a.old, n, a.why)
	}
	return strings.Replace(template, a.old, a.new, 1), nil
}

// pkg writes the chart in dir, made release version's for image, into out; it returns the
// package's path.
func pkg(dir, version, image, out string) (string, error) {
	if !semver.MatchString(version) {
		return "", fmt.Errorf("version %q is not vX.Y.Z[-pre]", version)
	}
	chrt, err := loader.LoadDir(dir)
	if err != nil {
		return "", err
	}
	// A chart's version is semver without the v; appVersion is the image's tag.
	chrt.Metadata.Version = strings.TrimPrefix(version, "v")
	chrt.Metadata.AppVersion = version
	found := false
	for _, f := range chrt.Raw {
		if f.Name == chartutil.ValuesfileName {
			if f.Data, err = releaseValues(f.Data, image); err != nil {
				return "", fmt.Errorf("%s/%s: %w", dir, f.Name, err)
			}
			found = true
		}
	}
	if !found {
		return "", fmt.Errorf("%s has no %s", dir, chartutil.ValuesfileName)
	}
	if err := chrt.Validate(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	return chartutil.Save(chrt, out)
}

var semver = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

// The lines of values.yaml that name the image, as written there.
const (
	repositoryLine = "    repository: ghcr.io/segment-operator/segment-operator\n"
	tagLine        = "    # tag: \"\"\n"
)

// releaseValues returns values.yaml (its text: the comments are the chart's documentation)
// with the image set to image. An image by digest goes whole into manager.image.repository,
// which the manager's template then uses as it is; repository:tag is split.
func releaseValues(values []byte, image string) ([]byte, error) {
	repo, tag, err := splitImage(image)
	if err != nil {
		return nil, err
	}
	s := string(values)
	for _, line := range []string{repositoryLine, tagLine} {
		if n := strings.Count(s, line); n != 1 {
			return nil, fmt.Errorf("%q appears %d times, not once: update hack/chart with values.yaml", line, n)
		}
	}
	s = strings.Replace(s, repositoryLine, "    repository: "+repo+"\n", 1)
	if tag != "" {
		s = strings.Replace(s, tagLine, fmt.Sprintf("    tag: %q\n", tag), 1)
	}
	return []byte(s), nil
}

// splitImage splits repository:tag; a reference by digest is returned whole as the
// repository, with no tag.
func splitImage(image string) (repo, tag string, err error) {
	if image == "" || strings.ContainsAny(image, " \t\n\"'") {
		return "", "", fmt.Errorf("image %q is not an image reference", image)
	}
	if strings.Contains(image, "@") {
		return image, "", nil
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon <= slash {
		return "", "", fmt.Errorf("image %q has neither a tag nor a digest", image)
	}
	return image[:colon], image[colon+1:], nil
}
