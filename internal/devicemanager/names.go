package devicemanager

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ValidateResourceName applies the kubelet's rule for extended resources: a
// qualified name with a domain ("vendor.com/gpu"), not in the kubernetes.io
// domain, usable as a quota name ("requests.<name>").
func ValidateResourceName(name string) error {
	if !strings.Contains(name, "/") {
		return fmt.Errorf("resource name %q is not an extended resource name: it needs a domain prefix, e.g. vendor.example/%s", name, name)
	}
	domain, _, _ := strings.Cut(name, "/")
	if domain == "kubernetes.io" || strings.HasSuffix(domain, ".kubernetes.io") {
		return fmt.Errorf("resource name %q is in the kubernetes.io domain, which is reserved for native resources", name)
	}
	if msgs := validation.IsQualifiedName(name); len(msgs) > 0 {
		return fmt.Errorf("resource name %q is not a qualified name: %s", name, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsQualifiedName("requests." + name); len(msgs) > 0 {
		return fmt.Errorf("resource name %q cannot be used in a quota (requests.%s): %s", name, name, strings.Join(msgs, "; "))
	}
	return nil
}

// isDeviceResource tells which container limits the device manager owns:
// extended resources outside the kubernetes.io domain.
func isDeviceResource(name string) bool {
	return ValidateResourceName(name) == nil && !strings.HasPrefix(name, "hugepages-")
}
