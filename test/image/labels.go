package image

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

var labelPair = regexp.MustCompile(`([A-Za-z0-9._-]+)=("[^"]*"|\S+)`)

// DockerfileLabels returns the LABELs of the Dockerfile's image, with $VERSION and
// ${VERSION} replaced by version: the labels the ko image must carry too, so that both
// images describe the product alike. It reads the LABEL instructions of the form
// `LABEL key="value" key=value \` (continued lines joined), which is how the Dockerfile
// writes them.
func DockerfileLabels(dockerfile, version string) (map[string]string, error) {
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		return nil, err
	}
	joined := strings.ReplaceAll(string(b), "\\\n", " ")
	labels := map[string]string{}
	for line := range strings.Lines(joined) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "LABEL ")
		if !ok {
			continue
		}
		for _, m := range labelPair.FindAllStringSubmatch(rest, -1) {
			v := strings.Trim(m[2], `"`)
			v = strings.NewReplacer("${VERSION}", version, "$VERSION", version).Replace(v)
			labels[m[1]] = v
		}
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("%s: no LABEL", dockerfile)
	}
	return labels, nil
}
