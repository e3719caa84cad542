package devicemanager

import (
	"context"
	"fmt"
	"testing"
	"time"

	"knode.io/knode/test/deviceplugin"
)

// BenchmarkAllocate10k is one pod's admission + Allocate at 10,000 devices
// (run with -cpuprofile to see where the time goes).
func BenchmarkAllocate10k(b *testing.B) {
	t := &testing.T{}
	f := newFixture(t, time.Minute)
	s := deviceplugin.New(f.dir, res, "w.sock", 10000)
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	if err := f.register(s); err != nil {
		b.Fatal(err)
	}
	for {
		if r, ok := f.resource(res); ok && r.Allocatable == 10000 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := f.m.Allocate(context.Background(), pod(fmt.Sprintf("u%d", i%9000), wants("app", 1, res))); err != nil {
			b.Fatal(err)
		}
	}
}
