package crispec

import (
	"fmt"
	"reflect"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// supportedVolumes are the volume types knode makes, by their API names.
var supportedVolumes = map[string]bool{
	"hostPath": true, "emptyDir": true, "configMap": true, "secret": true, "projected": true, "downwardAPI": true,
}

// VolumeType names the volume's source as the API does (persistentVolumeClaim,
// csi, ephemeral, ...); "" when none is set.
func VolumeType(vol *v1.Volume) string {
	v := reflect.ValueOf(vol.VolumeSource)
	t := v.Type()
	for i := range t.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return ""
}

// CheckVolumes refuses a pod with a volume knode cannot make, naming its
// type: every type but hostPath, emptyDir, configMap, secret, projected
// and downwardAPI (persistent volume claims, CSI, generic ephemeral, the
// in-tree network disks, image volumes), and projections of cluster
// trust bundles and pod certificates. The kubelet mounts all of a pod's
// volumes, used or not, before its sandbox; a volume it cannot mount
// keeps the pod from starting, and so it does here, never with the
// volume left out.
func CheckVolumes(pod *v1.Pod) error {
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		typ := VolumeType(vol)
		if typ == "" {
			return fmt.Errorf("volume %q: no volume source is set", vol.Name)
		}
		if !supportedVolumes[typ] {
			return fmt.Errorf("volume %q: %s volumes are not supported by knode (supported: hostPath, emptyDir, configMap, secret, projected, downwardAPI)", vol.Name, typ)
		}
		if vol.Projected == nil {
			continue
		}
		for j, src := range vol.Projected.Sources {
			switch {
			case src.ClusterTrustBundle != nil:
				return fmt.Errorf("volume %q: sources[%d]: clusterTrustBundle projections are not supported by knode", vol.Name, j)
			case src.PodCertificate != nil:
				return fmt.Errorf("volume %q: sources[%d]: podCertificate projections are not supported by knode", vol.Name, j)
			}
		}
	}
	return nil
}
