// Package listed holds only a test suite: it runs the manager as
// --namespace-credentials=<namespaces> would, as a user the API server authorizes by RBAC
// alone, with access to Secrets granted only by a RoleBinding in each listed namespace (see
// suite_test.go). It has a control plane of its own, apart from the controller suite's.
package listed
