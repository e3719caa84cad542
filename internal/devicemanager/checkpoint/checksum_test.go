package checkpoint

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/davecgh/go-spew/spew"
)

// spewChecksum is the kubelet's own computation, the oracle for checksum.
func spewChecksum(d checkpointData) uint32 {
	h := fnv.New32a()
	printer := spew.ConfigState{Indent: " ", SortKeys: true, DisableMethods: true, SpewKeys: true}
	printer.Fprintf(h, "%#v", d)
	return h.Sum32()
}

func TestChecksumIsSpews(t *testing.T) {
	tests := []struct {
		name string
		data checkpointData
	}{
		{"empty", checkpointData{}},
		{"empty, not nil", checkpointData{PodDeviceEntries: []PodDevicesEntry{}, RegisteredDevices: map[string][]string{}}},
		{"nil and empty inside", checkpointData{
			PodDeviceEntries:  []PodDevicesEntry{{}, {DeviceIDs: DevicesPerNUMA{}, AllocResp: []byte{}}, {DeviceIDs: DevicesPerNUMA{-1: nil, 3: {}}}},
			RegisteredDevices: map[string][]string{"a": nil, "b": {}, "": {""}},
		}},
		{"extreme NUMA nodes", checkpointData{PodDeviceEntries: []PodDevicesEntry{{DeviceIDs: DevicesPerNUMA{math.MinInt64: {"a"}, math.MaxInt64: {"b"}, 0: {"c"}}}}}},
		{"awkward strings", checkpointData{
			PodDeviceEntries: []PodDevicesEntry{{PodUID: "u 1:[x]", ContainerName: "c}{", ResourceName: "example.com/gpu",
				DeviceIDs: DevicesPerNUMA{-1: {"dev 0", "<nil>"}, 10: {"ünïcode"}, 2: {"a:b"}}, AllocResp: []byte{0, 9, 10, 255}}},
			RegisteredDevices: map[string][]string{"example.com/gpu": {"dev 0", "<nil>"}, "Z": {"1"}, "a": {"2"}},
		}},
	}
	for _, tt := range tests {
		if got, want := checksum(tt.data), spewChecksum(tt.data); got != want {
			t.Errorf("%s: checksum %d, spew's %d", tt.name, got, want)
		}
	}
	// And random checkpoints, shaped as real ones are.
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		const letters = "ab-_/:. [](){}<>0123456789"
		b := make([]byte, rng.IntN(8))
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	words := func() []string {
		if rng.IntN(5) == 0 {
			return nil
		}
		out := make([]string, rng.IntN(4))
		for i := range out {
			out[i] = word()
		}
		return out
	}
	for i := 0; i < 500; i++ {
		var d checkpointData
		if rng.IntN(6) > 0 {
			d.PodDeviceEntries = []PodDevicesEntry{}
			for j := rng.IntN(5); j > 0; j-- {
				e := PodDevicesEntry{PodUID: word(), ContainerName: word(), ResourceName: word()}
				if rng.IntN(4) > 0 {
					e.DeviceIDs = DevicesPerNUMA{}
					for k := rng.IntN(4); k > 0; k-- {
						e.DeviceIDs[int64(rng.IntN(20)-5)] = words()
					}
				}
				if rng.IntN(4) > 0 {
					e.AllocResp = make([]byte, rng.IntN(12))
					for k := range e.AllocResp {
						e.AllocResp[k] = byte(rng.IntN(256))
					}
				}
				d.PodDeviceEntries = append(d.PodDeviceEntries, e)
			}
		}
		if rng.IntN(6) > 0 {
			d.RegisteredDevices = map[string][]string{}
			for j := rng.IntN(5); j > 0; j-- {
				d.RegisteredDevices[word()] = words()
			}
		}
		if got, want := checksum(d), spewChecksum(d); got != want {
			t.Fatalf("random checkpoint %d: checksum %d, spew's %d\n%#v", i, got, want, d)
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = "device-" + string(rune('a'+i%26)) + "-0123456789"
	}
	entries := make([]PodDevicesEntry, 1000)
	for i := range entries {
		entries[i] = PodDevicesEntry{PodUID: "uid", ContainerName: "app", ResourceName: "example.com/widget",
			DeviceIDs: DevicesPerNUMA{-1: {ids[i]}}, AllocResp: []byte{10, 20, 30}}
	}
	d := checkpointData{PodDeviceEntries: entries, RegisteredDevices: map[string][]string{"example.com/widget": ids}}
	b.Run("knode", func(b *testing.B) {
		for b.Loop() {
			checksum(d)
		}
	})
	b.Run("spew", func(b *testing.B) {
		for b.Loop() {
			spewChecksum(d)
		}
	})
}
