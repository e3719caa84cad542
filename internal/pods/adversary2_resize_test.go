package pods

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// A resize to requests whose sum does not fit in an int64 (two containers
// asking 5Ei each, or a CPU count whose milli-value overflows) must not
// wrap negative and be allocated: it is Infeasible.
func TestResizeHugeRequests(t *testing.T) {
	a := testAllocations(func() (int64, int64) { return 2000, 4 << 30 })
	a.admit(resizePod("pod", "100m", "64Mi"))
	huge := resizePod("pod", "100m", "5Ei")
	second := *huge.Spec.Containers[0].DeepCopy()
	second.Name = "second"
	huge.Spec.Containers = append(huge.Spec.Containers, second)
	// The pod was admitted with both containers (the API never adds one).
	a.pods["pod"].containers["second"] = v1.ResourceRequirements{}
	if got := a.admit(huge); a.pods["pod"].pendingReason != v1.PodReasonInfeasible {
		t.Errorf("10Ei of memory on a 4Gi node: pending %q, runs with %s", a.pods["pod"].pendingReason, got.Spec.Containers[0].Resources.Requests.Memory())
	}
	cpu := resizePod("pod", "100m", "64Mi")
	cpu.Spec.Containers[0].Resources.Requests[v1.ResourceCPU] = resource.MustParse("9223372036854775807")
	if got := a.admit(cpu); a.pods["pod"].pendingReason != v1.PodReasonInfeasible {
		t.Errorf("2^63 CPUs on a 2-CPU node: pending %q, runs with %s", a.pods["pod"].pendingReason, got.Spec.Containers[0].Resources.Requests.Cpu())
	}
}
