package doctor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"knode.io/knode/internal/devicemanager/checkpoint"
)

func checkDevices(env Env, r *Report) {
	const area = "devices"
	dir := filepath.Join(env.RootDir, "device-plugins")
	sock := filepath.Join(dir, "kubelet.sock")
	if conn, err := net.DialTimeout("unix", sock, time.Second); err != nil {
		r.warn(area, "registration", fmt.Sprintf("%s is not listening: %v", sock, err), "start `knode run`; plugins register there")
	} else {
		conn.Close()
		r.ok(area, "registration", sock+" is listening")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Type()&os.ModeSocket == 0 || e.Name() == "kubelet.sock" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if conn, err := net.DialTimeout("unix", p, time.Second); err != nil {
			r.warn(area, "plugin socket", fmt.Sprintf("%s does not answer: a plugin that registered before and is gone", p), "restart the plugin or remove the socket")
		} else {
			conn.Close()
			r.ok(area, "plugin socket", p+" answers")
		}
	}
	entriesCk, registered, err := checkpoint.Read(filepath.Join(dir, checkpoint.FileName))
	switch {
	case errors.Is(err, os.ErrNotExist):
		r.ok(area, "checkpoint", "no device allocations recorded yet")
	case err != nil:
		r.problem(area, "checkpoint", err.Error(), "knode starts with no allocations; restart the pods that use devices")
	default:
		for _, name := range sortedKeys(registered) {
			r.ok(area, "resource", fmt.Sprintf("%s: %d devices recorded", name, len(registered[name])))
		}
		r.ok(area, "checkpoint", fmt.Sprintf("checksum valid, %d allocations", len(entriesCk)))
	}
}
