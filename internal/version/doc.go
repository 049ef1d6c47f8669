// Package version holds the operator's version, a semantic version set at link time:
//
//	go build -ldflags "-X github.com/segment-operator/segment-operator/internal/version.Version=v0.1.0"
//
// `make build` and the Dockerfile stamp it (VERSION); a build that does not is "dev".
package version
