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
