package doctor

import (
	"fmt"
	"slices"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// userNamespaces says which runtime handlers can run pods with hostUsers:
// false (their CRI Status features): without one such a pod gets no
// sandbox, and the operator should know before a user asks.
func userNamespaces(handlers []*runtimeapi.RuntimeHandler, r *Report) {
	const area, check = "runtime", "user namespaces"
	var with []string
	for _, h := range handlers {
		if h.GetFeatures().GetUserNamespaces() {
			name := h.GetName()
			if name == "" {
				name = "the default handler"
			}
			with = append(with, name)
		}
	}
	if len(with) == 0 {
		r.warn(area, check, "no runtime handler supports user namespaces: pods with hostUsers: false get no sandbox",
			"give the runtime a runc 1.2 or later (idmapped mounts) for its default handler or a RuntimeClass's")
		return
	}
	slices.Sort(with)
	r.ok(area, check, fmt.Sprintf("pods with hostUsers: false can run on: %s", strings.Join(with, ", ")))
}
