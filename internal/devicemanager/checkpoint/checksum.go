package checkpoint

import (
	"bufio"
	"hash/fnv"
	"maps"
	"slices"
)

// checksum is the kubelet's: FNV-32a over go-spew's "%#v" rendering of the
// data (keys sorted, methods disabled). It writes that rendering itself,
// byte for byte, instead of through spew's reflection: for 10,000 devices
// spew takes milliseconds and leaves garbage that slows every allocation
// made meanwhile. The test holds it to spew's output.
func checksum(d checkpointData) uint32 {
	h := fnv.New32a()
	w := bufio.NewWriterSize(h, 32<<10)
	w.WriteString("(checkpoint.checkpointData){PodDeviceEntries:([]checkpoint.PodDevicesEntry)")
	if d.PodDeviceEntries == nil {
		w.WriteString("<nil>")
	} else {
		w.WriteByte('[')
		for i, e := range d.PodDeviceEntries {
			if i > 0 {
				w.WriteByte(' ')
			}
			w.WriteString("{PodUID:(string)")
			w.WriteString(e.PodUID)
			w.WriteString(" ContainerName:(string)")
			w.WriteString(e.ContainerName)
			w.WriteString(" ResourceName:(string)")
			w.WriteString(e.ResourceName)
			w.WriteString(" DeviceIDs:(checkpoint.DevicesPerNUMA)")
			writeDevicesPerNUMA(w, e.DeviceIDs)
			w.WriteString(" AllocResp:([]uint8)")
			writeBytes(w, e.AllocResp)
			w.WriteByte('}')
		}
		w.WriteByte(']')
	}
	w.WriteString(" RegisteredDevices:(map[string][]string)")
	if d.RegisteredDevices == nil {
		w.WriteString("<nil>")
	} else {
		w.WriteString("map[")
		for i, name := range slices.Sorted(maps.Keys(d.RegisteredDevices)) {
			if i > 0 {
				w.WriteByte(' ')
			}
			w.WriteString(name)
			w.WriteByte(':')
			writeStrings(w, d.RegisteredDevices[name])
		}
		w.WriteByte(']')
	}
	w.WriteByte('}')
	_ = w.Flush() // a hash never fails to write
	return h.Sum32()
}

func writeDevicesPerNUMA(w *bufio.Writer, m DevicesPerNUMA) {
	if m == nil {
		w.WriteString("<nil>")
		return
	}
	var few [4]int64 // a machine has few NUMA nodes: no allocation
	nodes := few[:0]
	for node := range m {
		nodes = append(nodes, node)
	}
	slices.Sort(nodes)
	w.WriteString("map[")
	for i, node := range nodes {
		if i > 0 {
			w.WriteByte(' ')
		}
		writeInt(w, node)
		w.WriteByte(':')
		writeStrings(w, m[node])
	}
	w.WriteByte(']')
}

// writeInt writes n in decimal without allocating.
func writeInt(w *bufio.Writer, n int64) {
	u := uint64(n)
	if n < 0 {
		w.WriteByte('-')
		u = -u // two's complement: right for the smallest int64 too
	}
	var digits [20]byte
	i := len(digits)
	for {
		i--
		digits[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	for ; i < len(digits); i++ {
		w.WriteByte(digits[i])
	}
}

func writeStrings(w *bufio.Writer, s []string) {
	if s == nil {
		w.WriteString("<nil>")
		return
	}
	w.WriteByte('[')
	for i, v := range s {
		if i > 0 {
			w.WriteByte(' ')
		}
		w.WriteString(v)
	}
	w.WriteByte(']')
}

func writeBytes(w *bufio.Writer, b []byte) {
	if b == nil {
		w.WriteString("<nil>")
		return
	}
	w.WriteByte('[')
	for i, v := range b {
		if i > 0 {
			w.WriteByte(' ')
		}
		writeInt(w, int64(v))
	}
	w.WriteByte(']')
}
