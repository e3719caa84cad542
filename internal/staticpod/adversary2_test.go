package staticpod

import (
	"strings"
	"testing"
)

// A static pod's manifest is not validated by the API server: a negative
// quantity must be refused, not sent on (a memory limit of -1 byte is the
// runtime's "unlimited"), and a negative request must not lower the
// node's count of what its pods use.
func TestDecodeRefusesNegativeResources(t *testing.T) {
	for _, res := range []string{"limits: {memory: \"-1\"}", "requests: {cpu: \"-2\"}", "limits: {example.com/gpu: \"-1\"}"} {
		manifest := "apiVersion: v1\nkind: Pod\nmetadata: {name: neg}\nspec:\n  containers:\n  - name: app\n    image: example/app:1.0\n    resources:\n      " + res + "\n"
		_, err := Decode("/etc/manifests/neg.yaml", []byte(manifest), "node1")
		if err == nil || !strings.Contains(err.Error(), "must be greater than or equal to 0") {
			t.Errorf("%s: %v; want it refused as negative", res, err)
		}
	}
}
