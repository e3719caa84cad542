package controlplane

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// MachineAddress is the first IPv4 address of the interface of the default
// route: this machine's own address, which the API server may dial (its
// node proxy refuses loopback node addresses) and which never leads off the
// machine when dialled from it. Several test nodes can share it on
// different ports.
func MachineAddress() (net.IP, string, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	iface := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags ... Mask: the default route has
		// destination and mask 0 and is up (flag 1).
		if len(fields) >= 8 && fields[1] == "00000000" && fields[7] == "00000000" {
			if flags, err := strconv.ParseUint(fields[3], 16, 32); err == nil && flags&1 == 1 {
				iface = fields[0]
				break
			}
		}
	}
	if iface == "" {
		return nil, "", fmt.Errorf("no default route: cannot tell this machine's own address")
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, "", err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() && !n.IP.IsLoopback() {
			return n.IP.To4(), iface, nil
		}
	}
	return nil, "", fmt.Errorf("interface %s of the default route has no IPv4 address", iface)
}
