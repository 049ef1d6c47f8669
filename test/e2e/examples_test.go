package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	. "github.com/onsi/gomega"
)

// readyExamples are the examples whose Segments become Ready in this suite: they use the
// manager's own token, which the suite's simulator accepts, and name no remote ID. The
// others are only checked for admission: their placeholders (a token, a segment ID) are
// not the simulator's.
var readyExamples = []string{"basic.yaml", "members-from-configmap.yaml"}

// applyEveryExample applies each YAML file in examples/ the way a user would, with
// server-side apply and strict field validation, into a namespace of its own, and checks
// that the API server accepts every object and that the file makes at least one Segment.
// It lists the directory, so a new example is covered without a change here.
func applyEveryExample() {
	entries, err := os.ReadDir(filepath.Join("..", "..", "examples"))
	Expect(err).NotTo(HaveOccurred())
	var files []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, e.Name())
		}
	}
	Expect(files).NotTo(BeEmpty(), "examples/ has no YAML file")
	Expect(files).To(ContainElements(readyExamples))

	for _, file := range files {
		ns := exampleNamespace(file)
		kubectl("create", "namespace", ns)
		out := kubectl("apply", "--server-side", "--field-manager=examples-test", "--validate=strict",
			"-n", ns, "-f", filepath.Join("examples", file))
		Expect(out).To(ContainSubstring("serverside-applied"), file)
		Expect(kubectl("get", "segments", "-n", ns, "-o", "name")).NotTo(BeEmpty(), "%s makes no Segment", file)
	}
	for _, file := range readyExamples {
		kubectl("wait", "-n", exampleNamespace(file), "--for=condition=Ready", "segments", "--all", "--timeout=60s")
	}
}

// exampleNamespace is the namespace an example file is applied into: "example-" and the
// file's name without its extension, as a DNS label.
func exampleNamespace(file string) string {
	name := strings.ToLower(strings.TrimSuffix(file, filepath.Ext(file)))
	name = "example-" + regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(name, "-")
	return strings.TrimRight(name[:min(len(name), 63)], "-")
}
