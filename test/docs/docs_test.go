package docs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/segment-operator/segment-operator/test/localenv"
)

const root = "../.."

// Pages whose flags and Segments the tests check, and whose links must resolve. The
// CHANGELOG's links are checked too, but not its flags: it is history, and names flags of
// earlier versions.
var (
	flagsPage           = "docs/operations/flags.md"
	troubleshootingPage = "docs/user/troubleshooting.md"
	designOwnershipPage = "docs/design/ownership.md"
)

// page is one Markdown file, split into its prose (fenced code blocks blanked, so that line
// numbers still count) and its fenced code blocks.
type page struct {
	path   string // relative to the repository root, with slashes
	text   string
	prose  []string // the file's lines, those of fenced code blocks blank
	blocks []block
}

type block struct {
	lang string
	line int // of the opening fence, 1-based
	body string
}

// pages reads README.md, the other Markdown files at the root and under examples/, and
// docs/**/*.md.
func pages(t *testing.T) []page {
	t.Helper()
	var paths []string
	for _, pattern := range []string{"*.md", "examples/*.md", "examples/*/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []page
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		out = append(out, readPage(t, filepath.ToSlash(rel)))
	}
	return out
}

var fence = regexp.MustCompile("^\\s*(```+|~~~+)\\s*([A-Za-z0-9_-]*)")

func readPage(t *testing.T, rel string) page {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	pg := page{path: rel, text: string(b)}
	var open string // the open fence, "" outside a block
	var cur block
	var body []string
	for i, line := range strings.Split(pg.text, "\n") {
		m := fence.FindStringSubmatch(line)
		switch {
		case open == "" && m != nil:
			open, cur, body = m[1], block{lang: m[2], line: i + 1}, nil
			pg.prose = append(pg.prose, "")
		case open != "" && m != nil && strings.HasPrefix(m[1], open) && m[2] == "":
			open = ""
			cur.body = dedent(body)
			pg.blocks = append(pg.blocks, cur)
			pg.prose = append(pg.prose, "")
		case open != "":
			body = append(body, line)
			pg.prose = append(pg.prose, "")
		default:
			pg.prose = append(pg.prose, line)
		}
	}
	if open != "" {
		t.Errorf("%s:%d: a code block is never closed", rel, cur.line)
	}
	return pg
}

// dedent removes the indentation common to a block's lines (a block inside a list item).
func dedent(lines []string) string {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	var out []string
	for _, l := range lines {
		if len(l) >= indent && indent > 0 {
			l = l[indent:]
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}

var (
	codeSpan = regexp.MustCompile("`[^`\n]*`")
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	heading  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
)

// anchors are the #fragments GitHub makes of a page's headings: the heading's text,
// lowercased, every character but letters, digits, spaces, '-' and '_' dropped, spaces
// made '-'; a repeated one gets -1, -2, ...
func anchors(pg page) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range pg.prose {
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		text := mdLink.ReplaceAllString(m[1], "]") // [text](url) -> [text]
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			out[slug+"-"+strconv.Itoa(n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// TestLinks: every relative link of the Markdown files (not in code) names a file or
// directory that exists, and every #anchor a heading of the page it points into.
func TestLinks(t *testing.T) {
	all := pages(t)
	byPath := map[string]page{}
	for _, pg := range all {
		byPath[pg.path] = pg
	}
	checked := 0
	for _, pg := range all {
		for i, line := range pg.prose {
			line = codeSpan.ReplaceAllString(line, "code")
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				where := fmt.Sprintf("%s:%d: link %q", pg.path, i+1, target)
				file, anchor, _ := strings.Cut(target, "#")
				dest := pg.path
				if file != "" {
					dest = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(pg.path), file)))
					if strings.HasPrefix(dest, "../") {
						t.Errorf("%s: points outside the repository", where)
						continue
					}
					if _, err := os.Stat(filepath.Join(root, dest)); err != nil {
						t.Errorf("%s: %s does not exist", where, dest)
						continue
					}
				}
				if anchor == "" {
					continue
				}
				target2, ok := byPath[dest]
				if !ok {
					if !strings.HasSuffix(dest, ".md") {
						t.Errorf("%s: an anchor into %s, which is not Markdown", where, dest)
						continue
					}
					target2 = readPage(t, dest)
				}
				if !anchors(target2)[anchor] {
					t.Errorf("%s: %s has no heading whose anchor is #%s", where, dest, anchor)
				}
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d relative links found: is the link pattern broken?", checked)
	}
}

// flagsOf builds a program of this repository and runs it with args (a --help), and returns
// the flags its help lists: the standard flag package's "  -name" lines, or cobra's
// "--name" ones.
func flagsOf(t *testing.T, pkg string, args ...string) map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	out := map[string]bool{}
	std := regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9-]*)`)
	cobra := regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--([a-z0-9][a-z0-9-]*)`)
	for _, a := range args {
		cmd := exec.Command(bin, strings.Fields(a)...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		_ = cmd.Run() // the help is what counts, not the exit code
		for _, re := range []*regexp.Regexp{std, cobra} {
			for _, m := range re.FindAllStringSubmatch(buf.String(), -1) {
				out[m[1]] = true
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s %v listed no flags", pkg, args)
	}
	return out
}

// Flags of tools other than ours that the docs name outside code blocks.
var otherToolsFlags = map[string]bool{
	// kubectl
	"for": true, "timeout": true, "from-file": true, "from-literal": true, "field-selector": true,
	"clusterrole": true, "serviceaccount": true, "dry-run": true,
	// helm
	"set": true, "create-namespace": true, "reuse-values": true, "reset-then-reuse-values": true,
	// cosign
	"certificate-identity-regexp": true, "certificate-oidc-issuer": true,
	// curl
	"request": true, "url": true, "header": true, "data-raw": true,
}

// flagMention matches --name, and --prefix-* (a family of flags: at least one must exist).
var flagMention = regexp.MustCompile(`(?:^|[^A-Za-z0-9-])--([a-z][a-z0-9-]*[a-z0-9])(-\*)?`)

// TestManagerFlags: the flags page's table lists exactly the manager's flags (what
// `manager -help` prints: cmd/main.go registers them on the standard flag set in main, out
// of a test's reach, so the test builds the binary and asks it); and every --flag the docs
// name in prose (fenced code blocks are commands for kubectl, helm and curl, and are left
// out) is one of the manager's, the kubectl plugin's, the simulator's, or of a tool in
// otherToolsFlags.
func TestManagerFlags(t *testing.T) {
	manager := flagsOf(t, "./cmd", "-help")
	plugin := flagsOf(t, "./cmd/kubectl-segments", "--help", "export --help", "plan --help", "status --help", "version --help")
	sim := flagsOf(t, "./cmd/chatbot-sim", "-help")

	// The flags page: its table's first column.
	pg := readPage(t, flagsPage)
	documented := map[string]bool{}
	for i, line := range pg.prose {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range flagMention.FindAllStringSubmatch(first, -1) {
			documented[m[1]] = true
			if !manager[m[1]] {
				t.Errorf("%s:%d: --%s is not a flag of the manager (cmd/main.go)", flagsPage, i+1, m[1])
			}
		}
	}
	for f := range manager {
		if !documented[f] {
			t.Errorf("the manager's flag --%s is not in the table of %s", f, flagsPage)
		}
	}

	for _, pg := range pages(t) {
		if pg.path == "CHANGELOG.md" {
			continue
		}
		for i, line := range pg.prose {
			for _, m := range flagMention.FindAllStringSubmatch(line, -1) {
				f := m[1]
				if m[2] != "" {
					if !slices.ContainsFunc(slices.Collect(maps.Keys(manager)), func(g string) bool { return strings.HasPrefix(g, f+"-") }) {
						t.Errorf("%s:%d: no flag of the manager starts with --%s-", pg.path, i+1, f)
					}
					continue
				}
				if !manager[f] && !plugin[f] && !sim[f] && !otherToolsFlags[f] {
					t.Errorf("%s:%d: --%s is a flag of neither the manager, the kubectl plugin, the simulator, nor a tool the test knows", pg.path, i+1, f)
				}
			}
		}
	}
}

// reasons returns the values of the Reason* constants of api/v1alpha1/conditions.go: every
// reason the operator can set.
func reasons(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, "api", "v1alpha1", "conditions.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "Reason") || i >= len(vs.Values) {
				continue
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				v, _ := strconv.Unquote(lit.Value)
				out = append(out, v)
			}
		}
		return true
	})
	if len(out) < 10 {
		t.Fatalf("found only %d Reason constants in api/v1alpha1/conditions.go", len(out))
	}
	return out
}

// TestTroubleshootingTable: the troubleshooting page has one table, whose first column
// names each reason the operator can set, exactly once, and nothing else.
func TestTroubleshootingTable(t *testing.T) {
	pg := readPage(t, troubleshootingPage)
	tables, rows := 0, map[string]int{}
	inTable := false
	for i, line := range pg.prose {
		isRow := strings.HasPrefix(line, "|")
		if isRow && !inTable {
			tables++
		}
		inTable = isRow
		if !isRow || strings.HasPrefix(line, "|---") || strings.HasPrefix(line, "| reason") {
			continue
		}
		cell := strings.TrimSpace(strings.Split(line, "|")[1])
		if !strings.HasPrefix(cell, "`") || !strings.HasSuffix(cell, "`") {
			t.Errorf("%s:%d: the first cell, %s, is not one `Reason`", troubleshootingPage, i+1, cell)
			continue
		}
		rows[strings.Trim(cell, "`")]++
	}
	if tables != 1 {
		t.Errorf("%s has %d tables, want one", troubleshootingPage, tables)
	}
	known := reasons(t)
	for _, r := range known {
		if rows[r] != 1 {
			t.Errorf("reason %s (api/v1alpha1/conditions.go) is in %d rows of %s's table, want 1", r, rows[r], troubleshootingPage)
		}
	}
	for r := range rows {
		if !slices.Contains(known, r) {
			t.Errorf("%s lists %s, which is not a reason in api/v1alpha1/conditions.go", troubleshootingPage, r)
		}
	}
}

// TestStateDiagram: the design notes draw the ownership states as internal/controller's
// package doc does, line for line, so that there is one drawing.
func TestStateDiagram(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(root, "internal", "controller", "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	var diagram []string
	for l := range strings.SplitSeq(string(src), "\n") {
		if d, ok := strings.CutPrefix(l, "//\t"); ok {
			if strings.Contains(d, "(none)") || len(diagram) > 0 {
				diagram = append(diagram, d)
			}
		} else if len(diagram) > 0 {
			break
		}
	}
	if len(diagram) < 5 {
		t.Fatalf("no state diagram found in internal/controller/doc.go")
	}
	pg := readPage(t, designOwnershipPage)
	want := strings.Join(diagram, "\n") + "\n"
	for _, b := range pg.blocks {
		if b.body == want {
			return
		}
	}
	t.Errorf("%s has no code block equal to the state diagram of internal/controller/doc.go:\n%s", designOwnershipPage, want)
}

// example is one Segment taken from a ```yaml block of the docs.
type example struct {
	where string
	obj   *unstructured.Unstructured
}

// segmentExamples returns the Segments of the docs' yaml blocks. The rule: every document
// of a ```yaml block with kind: Segment is checked as it is; a document with no kind whose
// only key is spec (a fragment showing a few fields) is checked wrapped in a Segment of the
// default namespace; every other document (a kustomization, a values file) is not a Segment
// and is left out.
func segmentExamples(t *testing.T) []example {
	t.Helper()
	var out []example
	for _, pg := range pages(t) {
		if pg.path == "CHANGELOG.md" {
			continue
		}
		for _, b := range pg.blocks {
			if b.lang != "yaml" && b.lang != "yml" {
				continue
			}
			dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(b.body), 4096)
			for n := 0; ; n++ {
				obj := map[string]any{}
				err := dec.Decode(&obj)
				if errors.Is(err, io.EOF) {
					break
				}
				where := fmt.Sprintf("%s:%d (document %d)", pg.path, b.line, n+1)
				if err != nil {
					t.Errorf("%s: not YAML: %v", where, err)
					break
				}
				switch {
				case obj["kind"] == "Segment":
				case obj["kind"] == nil && len(obj) == 1 && obj["spec"] != nil:
					obj = map[string]any{
						"apiVersion": "users.chatbot.com/v1alpha1", "kind": "Segment",
						"metadata": map[string]any{"name": fmt.Sprintf("fragment-%d", len(out)), "namespace": metav1.NamespaceDefault},
						"spec":     obj["spec"],
					}
				default:
					continue
				}
				out = append(out, example{where: where, obj: &unstructured.Unstructured{Object: obj}})
			}
		}
	}
	return out
}

// TestSegmentExamples: every Segment the docs show passes a server-side dry run against the
// CRD (with strict field validation: a misspelt field fails) and the admission policy, on a control plane of its own (test/localenv; envtest's
// binaries from $KUBEBUILDER_ASSETS, else hack/envtest.sh builds them). Skipped with -short.
func TestSegmentExamples(t *testing.T) {
	examples := segmentExamples(t)
	if len(examples) < 5 {
		t.Fatalf("only %d Segments found in the docs' yaml blocks: is the extraction broken?", len(examples))
	}
	if testing.Short() {
		t.Skipf("-short: %d Segments found, not dry-run", len(examples))
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	env, err := localenv.Start(localenv.Options{Root: abs, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(env.Config(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var namespaces []string
	for _, ex := range examples {
		if ns := ex.obj.GetNamespace(); ns != "" && !slices.Contains(namespaces, ns) {
			namespaces = append(namespaces, ns)
		}
	}
	sort.Strings(namespaces)
	for _, ns := range namespaces {
		err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, ex := range examples {
		obj := ex.obj.DeepCopy()
		if obj.GetNamespace() == "" {
			obj.SetNamespace(metav1.NamespaceDefault)
		}
		if err := c.Create(ctx, obj, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
			t.Errorf("%s: Segment %s/%s refused: %v", ex.where, obj.GetNamespace(), obj.GetName(), err)
			continue
		}
		if !slices.Contains(obj.GetFinalizers(), "users.chatbot.com/finalizer") {
			t.Errorf("%s: the admission policy did not put the finalizer on (finalizers %v)", ex.where, obj.GetFinalizers())
		}
	}
	t.Logf("%d Segments of the docs pass a server-side dry run", len(examples))
}
