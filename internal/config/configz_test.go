package config

import (
	"testing"
	"time"
)

// TestKubeletConfigurationShowsTheEffectiveValues: /configz is rendered from
// Config, so a value from the file, one from a flag, and a default all show.
func TestKubeletConfigurationShowsTheEffectiveValues(t *testing.T) {
	c, _, err := load(t, standalone+"authentication:\n"+standaloneAuthn+"staticPodPath: /m\nport: 11250\nfileCheckFrequency: 7s\nresolvConf: /r\n",
		"--sync-frequency", "9s", "--pod-cidr", "10.1.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	kc := c.KubeletConfiguration("/ca")
	if kc.StaticPodPath != "/m" || kc.Port != 11250 || kc.FileCheckFrequency.Duration != 7*time.Second || kc.ResolverConfig == nil || *kc.ResolverConfig != "/r" {
		t.Errorf("file values not shown: %+v", kc)
	}
	if kc.SyncFrequency.Duration != 9*time.Second || kc.PodCIDR != "10.1.0.0/16" {
		t.Errorf("flag values not shown: sync %s, pod CIDR %q", kc.SyncFrequency.Duration, kc.PodCIDR)
	}
	if kc.RuntimeRequestTimeout.Duration != DefaultRuntimeRequestTimeout || kc.CgroupRoot != DefaultCgroupRoot || kc.CgroupDriver != "cgroupfs" {
		t.Errorf("defaults not shown: %+v", kc)
	}
	if kc.Authentication.X509.ClientCAFile != "/ca" || kc.Authorization.Mode != "AlwaysAllow" || *kc.Authentication.Webhook.Enabled {
		t.Errorf("authentication not shown: %+v %+v", kc.Authentication, kc.Authorization)
	}
	if kc.Kind != "KubeletConfiguration" || kc.APIVersion != "kubelet.config.k8s.io/v1beta1" || !kc.FeatureGates["ContainerCheckpoint"] {
		t.Errorf("type or gates: %+v", kc.TypeMeta)
	}
}
