// Package version holds knode's version, set at link time with
// -ldflags "-X knode.io/knode/internal/version.Version=v1.2.3".
package version

import "runtime"

// Version is knode's release; "dev" in untagged builds.
var Version = "v0.1.0-dev"

// String is the one-line version report of `knode version`.
func String() string {
	return "knode " + Version + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}
