// Package version holds the operator's version, a semantic version set at link time:
//
//	go build -ldflags "-X github.com/segment-operator/segment-operator/internal/version.Version=v0.1.0"
//
// `make build` and the Dockerfile stamp it (VERSION); a build that does not is "dev".
package version

// Version is the operator's release version as stamped at link time. Read it with Get.
var Version = "dev"

// Get returns the stamped version, or "dev" for a build that stamped none or an empty one
// (`make build VERSION=`), so that logs, --version and the User-Agent never show a blank.
func Get() string {
	if Version == "" {
		return "dev"
	}
	return Version
}

// UserAgent is the User-Agent the operator sends to the ChatBot API.
func UserAgent() string { return "segment-operator/" + Get() }
