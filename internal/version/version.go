// Package version holds the operator's version, set at link time:
//
//	go build -ldflags "-X github.com/segment-operator/segment-operator/internal/version.Version=v0.1.0"
package version

// Version is the operator's release version; "dev" for a build from a checkout.
var Version = "dev"

// UserAgent is the User-Agent the operator sends to the ChatBot API.
func UserAgent() string { return "segment-operator/" + Version }
