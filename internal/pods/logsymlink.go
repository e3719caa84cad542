package pods

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// linkContainerLog keeps the kubelet's symlink for log collectors:
// <ContainerLogsDir>/<pod>_<namespace>_<container>-<containerID>.log → the CRI log file.
func (d *podFiles) linkContainerLog(pod *v1.Pod, container, id, target string) {
	if d.ContainerLogsDir == "" {
		return
	}
	if err := os.MkdirAll(d.ContainerLogsDir, 0o755); err != nil {
		d.log.Warn("cannot create the container log symlink directory", "dir", d.ContainerLogsDir, "err", err)
		return
	}
	link := filepath.Join(d.ContainerLogsDir, fmt.Sprintf("%s_%s_%s-%s.log", pod.Name, pod.Namespace, container, id))
	_ = os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		d.log.Warn("cannot create the container log symlink", "link", link, "err", err)
	}
}

// unlinkContainerLog removes a removed container's symlink.
func (d *podFiles) unlinkContainerLog(id string) {
	if d.ContainerLogsDir == "" {
		return
	}
	links, _ := filepath.Glob(filepath.Join(d.ContainerLogsDir, "*-"+id+".log"))
	for _, l := range links {
		_ = os.Remove(l)
	}
}
