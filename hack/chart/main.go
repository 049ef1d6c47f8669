// Command chart packages charts/chart for a release, with helm's own packages: the chart's
// version and appVersion set to the release's, its image to the one the release pushed.
//
//	go run ./hack/chart -version v1.2.3 -image ghcr.io/segment-operator/segment-operator@sha256:... -out dist
//
// writes dist/segment-operator-1.2.3.tgz, which `helm push` publishes and `helm install`
// takes. `make release` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
)

func main() {
	dir := flag.String("chart", "charts/chart", "the chart's directory")
	version := flag.String("version", "", "the release's version, vX.Y.Z[-pre]")
	image := flag.String("image", "", "the manager image the chart installs: repository:tag or repository@sha256:digest")
	out := flag.String("out", "dist", "the directory the package is written into")
	flag.Parse()
	path, err := pkg(*dir, *version, *image, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
	fmt.Println(path)
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
