package doctor

import (
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestUserNamespacesCheck(t *testing.T) {
	feat := func(userns bool) *runtimeapi.RuntimeHandlerFeatures {
		return &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: userns}
	}
	for _, tc := range []struct {
		name     string
		handlers []*runtimeapi.RuntimeHandler
		status   Status
		msg      string
	}{
		{"an old runtime lists none", nil, Warning, "no runtime handler supports user namespaces"},
		{"none supports", []*runtimeapi.RuntimeHandler{{Name: "", Features: feat(false)}, {Name: "runc", Features: feat(false)}}, Warning, "pods with hostUsers: false get no sandbox"},
		{"a RuntimeClass's", []*runtimeapi.RuntimeHandler{{Name: "", Features: feat(false)}, {Name: "runc-userns", Features: feat(true)}}, OK, "can run on: runc-userns"},
		{"the default", []*runtimeapi.RuntimeHandler{{Name: "runc", Features: feat(true)}, {Name: "", Features: feat(true)}}, OK, "can run on: runc, the default handler"},
	} {
		r := &Report{}
		userNamespaces(tc.handlers, r)
		res, ok := find(r, "runtime", "user namespaces")
		if !ok || res.Status != tc.status || !strings.Contains(res.Message, tc.msg) {
			t.Errorf("%s: %+v, want %v %q", tc.name, res, tc.status, tc.msg)
		}
	}
}
