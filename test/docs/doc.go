// Package docs holds the tests that keep the docs (README.md, docs/**/*.md, and the other
// Markdown files of the repository) true to the code, so that they cannot rot unnoticed:
//
//   - TestLinks: every relative link resolves, to a file or directory that exists, and every
//     #anchor to a heading of its page (GitHub's rules: lowercase, spaces made '-',
//     punctuation dropped).
//   - TestManagerFlags: docs/operations/flags.md lists exactly the manager's flags, and every
//     --flag the prose names is the manager's, the kubectl plugin's or the simulator's (or
//     one of kubectl, helm or cosign the test lists).
//   - TestTroubleshootingTable: docs/user/troubleshooting.md has one table, naming every
//     condition reason of api/v1alpha1/conditions.go once.
//   - TestStateDiagram: docs/design/ownership.md draws the ownership states as
//     internal/controller/doc.go does.
//   - TestSegmentExamples: every Segment of a ```yaml block passes a server-side dry run
//     against the CRD, with strict field validation, and the admission policy (envtest,
//     through test/localenv; -short skips it).
//
// There is no code here, only tests.
package docs
