package main

import (
	"testing"

	"google.golang.org/grpc/mem"
)

// TestFinerGRPCBuffers: a 48 KiB message (a CreateContainer whose env
// carries the variables of 100 Services) takes a 64 KiB buffer from gRPC's
// pool, not the 1 MiB one of its default tiers.
func TestFinerGRPCBuffers(t *testing.T) {
	if err := finerGRPCBuffers(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ size, maxCap int }{
		{48 << 10, 64 << 10},
		{33 << 10, 64 << 10},
		{200 << 10, 256 << 10},
		{16 << 10, 16 << 10},
		{1 << 20, 1 << 20},
	} {
		pool := mem.DefaultBufferPool()
		buf := pool.Get(tc.size)
		if len(*buf) != tc.size || cap(*buf) > tc.maxCap {
			t.Errorf("Get(%d): len %d cap %d, want cap at most %d", tc.size, len(*buf), cap(*buf), tc.maxCap)
		}
		pool.Put(buf)
	}
}
