package pods

import (
	"context"
	"log/slog"
	"time"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/apivolume"
	"knode.io/knode/internal/crispec"
)

// APIObjects reads what ConfigMap, Secret and projected volumes and env
// sources need from the API server (cluster mode). Static pods have none
// of these volumes or sources.
type APIObjects interface {
	apivolume.Objects
	// ConfigMapData reads a ConfigMap's data alone: env sources take no
	// binaryData, as with the kubelet.
	ConfigMapData(ctx context.Context, namespace, name string) (map[string]string, error)
}

// newAPIVolumes gives the volume writer the pod fields env vars resolve,
// so a downwardAPI file and an env var say the same.
func newAPIVolumes(objects APIObjects, node crispec.Node, now func() time.Time, log *slog.Logger) *apivolume.Volumes {
	var vo apivolume.Objects
	if objects != nil {
		// A nil interface stays nil: apivolume tells "no API server" by it.
		vo = objects
	}
	return apivolume.New(apivolume.Config{
		Objects: vo,
		PodField: func(pod *v1.Pod, path string) (string, error) {
			return crispec.PodField(pod, path, "", node)
		},
		ResourceField: func(pod *v1.Pod, ref *v1.ResourceFieldSelector) (string, error) {
			return crispec.VolumeResourceField(pod, ref, node)
		},
		Now: now,
		Log: log,
	})
}

// refreshAPIVolumes brings a running pod's ConfigMap, Secret, projected and
// downwardAPI volumes up to date, and repairs them if they were tampered
// with. A volume whose objects cannot be read keeps its content, as with
// the kubelet.
func (d *podFiles) refreshAPIVolumes(vols *apivolume.PodState, pod *v1.Pod) {
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if !apivolume.Handles(vol) {
			continue
		}
		if _, err := d.apiVolume(vols, pod, vol); err != nil {
			d.log.Warn("volume refresh failed; the old content stays", "pod", podRef(pod, nil), "volume", vol.Name, "err", err)
		}
	}
}

// apiVolume writes a ConfigMap, Secret, projected or downwardAPI volume
// into the pod's directory and returns its path.
func (d *podFiles) apiVolume(vols *apivolume.PodState, pod *v1.Pod, vol *v1.Volume) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.RequestTimeout)
	defer cancel()
	return d.apiVols.Write(ctx, vols, pod, vol, PodDir(d.RootDir, pod))
}
