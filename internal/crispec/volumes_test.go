package crispec

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestCheckVolumes(t *testing.T) {
	for _, tt := range []struct {
		name    string
		src     v1.VolumeSource
		wantErr string
	}{
		{name: "emptyDir", src: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{name: "hostPath", src: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/x"}}},
		{name: "configMap", src: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}},
		{name: "secret", src: v1.VolumeSource{Secret: &v1.SecretVolumeSource{}}},
		{name: "downwardAPI", src: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{}}},
		{name: "projected token, configMap, secret, downwardAPI", src: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "t"}}, {ConfigMap: &v1.ConfigMapProjection{}},
			{Secret: &v1.SecretProjection{}}, {DownwardAPI: &v1.DownwardAPIProjection{}}}}}},
		{name: "persistentVolumeClaim", src: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}},
			wantErr: `volume "v": persistentVolumeClaim volumes are not supported by knode (supported: hostPath, emptyDir, configMap, secret, projected, downwardAPI)`},
		{name: "csi", src: v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: "d"}},
			wantErr: `volume "v": csi volumes are not supported by knode (supported: hostPath, emptyDir, configMap, secret, projected, downwardAPI)`},
		{name: "ephemeral", src: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}},
			wantErr: `volume "v": ephemeral volumes are not supported by knode (supported: hostPath, emptyDir, configMap, secret, projected, downwardAPI)`},
		{name: "nfs", src: v1.VolumeSource{NFS: &v1.NFSVolumeSource{}},
			wantErr: `volume "v": nfs volumes are not supported by knode (supported: hostPath, emptyDir, configMap, secret, projected, downwardAPI)`},
		{name: "image", src: v1.VolumeSource{Image: &v1.ImageVolumeSource{}},
			wantErr: `volume "v": image volumes are not supported by knode (supported: hostPath, emptyDir, configMap, secret, projected, downwardAPI)`},
		{name: "none", wantErr: `volume "v": no volume source is set`},
		{name: "clusterTrustBundle projection", src: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{}}, {ClusterTrustBundle: &v1.ClusterTrustBundleProjection{}}}}},
			wantErr: `volume "v": sources[1]: clusterTrustBundle projections are not supported by knode`},
		{name: "podCertificate projection", src: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{PodCertificate: &v1.PodCertificateProjection{}}}}},
			wantErr: `volume "v": sources[0]: podCertificate projections are not supported by knode`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			pod.Spec.Volumes = []v1.Volume{{Name: "ok", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}, {Name: "v", VolumeSource: tt.src}}
			err := CheckVolumes(pod)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("got %q, want %q", got, tt.wantErr)
			}
		})
	}
}
