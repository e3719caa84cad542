package server

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// maxParamLen bounds any path parameter before validation looks at it.
const maxParamLen = 253

// validatePodRef checks namespace, pod and (if non-empty) container names
// before any lookup, so a crafted path never reaches the filesystem.
func validatePodRef(namespace, pod, container string) error {
	check := func(kind, value string, rules func(string) []string) error {
		if len(value) > maxParamLen {
			return badRequest(fmt.Sprintf("invalid %s name: longer than %d characters", kind, maxParamLen))
		}
		if msgs := rules(value); len(msgs) > 0 {
			return badRequest(fmt.Sprintf("invalid %s name %q: %s", kind, value, strings.Join(msgs, "; ")))
		}
		return nil
	}
	if err := check("namespace", namespace, validation.IsDNS1123Label); err != nil {
		return err
	}
	if err := check("pod", pod, validation.IsDNS1123Subdomain); err != nil {
		return err
	}
	if container != "" {
		return check("container", container, validation.IsDNS1123Label)
	}
	return nil
}
