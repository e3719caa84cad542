package devicemanager

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// TestAdversary3RetainKeepsPodsAllocatedAfterKeep: knode restarts with a
// gone pod's devices in the checkpoint. The pods manager computes the pods
// to keep once every source has spoken and Retain runs after, in its own
// goroutine; a tenant's pod created in between gets a device. Retain must
// free the gone pod's device only: freed, the tenant's device would go to
// the next pod too (one device in two pods).
func TestAdversary3RetainKeepsPodsAllocatedAfterKeep(t *testing.T) {
	f := newFixture(t, time.Minute)
	s := f.plugin(res, "w.sock", 2)
	if err := f.register(s); err != nil {
		t.Fatal(err)
	}
	f.wait(res, 2, 2)
	gone := pod("gone", wants("app", 1, res))
	if err := f.m.Allocate(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	if err := f.m.PreStart(context.Background(), gone, &gone.Spec.Containers[0]); err != nil {
		t.Fatal(err)
	}
	f.start(time.Minute) // restart
	keep := map[types.UID]bool{}
	// The plugin registers again (a new socket: the restart cleared the dir).
	if err := f.register(f.plugin(res, "w2.sock", 2)); err != nil {
		t.Fatal(err)
	}
	if len(f.m.PodDevices("gone")) == 0 {
		t.Fatal("the gone pod's device was not restored")
	}
	f.wait(res, 2, 2)
	if err := f.m.Allocate(context.Background(), pod("late", wants("app", 1, res))); err != nil {
		t.Fatal(err)
	}
	late := fmt.Sprint(f.m.PodDevices("late"))
	f.m.Retain(keep)
	if got := fmt.Sprint(f.m.PodDevices("late")); got != late {
		t.Fatalf("the late pod's devices: %s, were %s", got, late)
	}
	if len(f.m.PodDevices("gone")) != 0 {
		t.Fatal("the gone pod kept its device")
	}
	if err := f.m.Allocate(context.Background(), pod("next", wants("app", 1, res))); err != nil {
		t.Fatal(err)
	}
	if next := fmt.Sprint(f.m.PodDevices("next")); next == late {
		t.Fatalf("pods late and next share %s", next)
	}
}
