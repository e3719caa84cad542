package pods

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/safefs"
	"knode.io/knode/internal/subpath"
)

// terminationGrace is the pod's grace period, or for a pod no source knows
// any more, the one recorded on its containers.
func (w *worker) terminationGrace(rp *runtimePod) int64 {
	if g, ok := w.d.records.graceFor(w.uid); ok {
		return g
	}
	if w.lastPod != nil {
		return crispec.GracePeriod(w.lastPod)
	}
	for _, c := range rp.allContainers() {
		if g, err := strconv.ParseInt(c.Annotations[crispec.AnnotationPodTerminationGrace], 10, 64); err == nil {
			return g
		}
	}
	return v1.DefaultTerminationGracePeriodSeconds
}

// killPod stops every running container at once with the grace period
// (SIGTERM, then SIGKILL when it ends), then stops the sandboxes.
func (w *worker) killPod(ctx context.Context, rp *runtimePod, grace int64) {
	rt := w.d.Runtime
	podIP := ""
	if st := w.d.records.statusOf(w.uid); st != nil {
		podIP = st.PodIP
	}
	var wg sync.WaitGroup
	for _, c := range rp.allContainers() {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING && c.State != runtimeapi.ContainerState_CONTAINER_CREATED {
			continue
		}
		if w.lastPod != nil {
			w.d.Events.Event(w.lastPod, v1.EventTypeNormal, "Killing", "Stopping container "+c.GetMetadata().GetName())
		}
		wg.Add(1)
		go func(c *runtimeapi.Container) {
			defer wg.Done()
			w.d.hooks.stopContainer(ctx, w.lastPod, c, grace, podIP)
		}(c)
	}
	wg.Wait()
	for _, sb := range rp.sandboxes {
		if sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, w.d.RequestTimeout)
		if err := rt.StopPodSandbox(sctx, sb.Id); err != nil {
			w.d.log.Warn("stop pod sandbox failed", "sandbox", sb.Id, "err", err)
		}
		cancel()
	}
	w.d.records.wakeRelist()
}

// removePod removes the (stopped) containers and sandboxes.
func (w *worker) removePod(ctx context.Context, rp *runtimePod) {
	rt := w.d.Runtime
	for _, c := range rp.allContainers() {
		cctx, cancel := context.WithTimeout(ctx, w.d.RequestTimeout)
		if err := rt.RemoveContainer(cctx, c.Id); err != nil {
			w.d.log.Warn("remove container failed", "container", c.Id, "err", err)
		} else {
			w.d.files.unlinkContainerLog(c.Id)
		}
		cancel()
	}
	// The containers' subPath binds go with them.
	podDir := PodDir(w.d.files.RootDir, &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: w.uid}})
	if err := subpath.CleanPod(podDir); err != nil {
		w.d.log.Warn("remove subPath mounts", "pod", podRef(w.lastPod, rp), "err", err)
	}
	for _, sb := range rp.sandboxes {
		sctx, cancel := context.WithTimeout(ctx, w.d.RequestTimeout)
		if err := rt.RemovePodSandbox(sctx, sb.Id); err != nil {
			w.d.log.Warn("remove pod sandbox failed", "sandbox", sb.Id, "err", err)
		} else {
			w.d.log.Info("pod sandbox removed", "sandbox", sb.Id)
		}
		cancel()
	}
	w.d.records.wakeRelist()
}

// cleanupFiles removes the pod's volume and log directories once it is gone.
// Every mount below the pod's directory (tmpfs volumes, subPath binds of a
// volume's or a hostPath's directories) is detached first, and the removal
// itself never crosses a mount point nor follows a link, so nothing outside
// the pod's own directories is touched even if a detach failed.
func (w *worker) cleanupFiles() {
	// Nothing of the pod runs any more: its user namespace's IDs are free.
	w.d.files.releaseUserNamespace(w.uid)
	if w.lastPod == nil {
		return
	}
	podDir := PodDir(w.d.files.RootDir, w.lastPod)
	if err := unmountVolumes(podDir); err != nil {
		w.d.log.Warn("unmount pod volumes", "dir", podDir, "err", err)
	}
	for _, dir := range []string{podDir, LogDir(w.d.files.PodLogsDir, w.lastPod)} {
		if err := removeBeneath(dir); err != nil {
			w.d.log.Warn("remove pod directory", "dir", dir, "err", err)
		}
	}
	// Nothing of the pod runs any more: its cgroup can go.
	if err := w.d.Cgroups.RemovePod(w.lastPod); err != nil {
		w.d.log.Warn("remove pod cgroup", "pod", podRef(w.lastPod, nil), "err", err)
	}
}

// removeBeneath removes dir (a path knode built) and its tree, working
// beneath its opened parent with safefs.
func removeBeneath(dir string) error {
	parent, err := safefs.Open(filepath.Dir(dir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer parent.Close()
	return parent.RemoveAll(filepath.Base(dir))
}
