package staticpod

import (
	"strings"

	v1 "k8s.io/api/core/v1"
)

// SetDefaults applies the API server's defaults for the fields knode reads,
// since static pods never pass through an API server.
func SetDefaults(pod *v1.Pod) {
	spec := &pod.Spec
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = v1.RestartPolicyAlways
	}
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = v1.DNSClusterFirst
	}
	if spec.TerminationGracePeriodSeconds == nil {
		grace := int64(v1.DefaultTerminationGracePeriodSeconds)
		spec.TerminationGracePeriodSeconds = &grace
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = v1.DefaultSchedulerName
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &v1.PodSecurityContext{}
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
	for i := range spec.Volumes {
		vol := &spec.Volumes[i]
		if vol.HostPath != nil && vol.HostPath.Type == nil {
			t := v1.HostPathUnset
			vol.HostPath.Type = &t
		}
		if vol.EmptyDir == nil && vol.HostPath == nil && vol.VolumeSource == (v1.VolumeSource{}) {
			vol.EmptyDir = &v1.EmptyDirVolumeSource{}
		}
	}
	if pod.Status.Phase == "" {
		pod.Status.Phase = v1.PodPending
	}
}

func defaultContainer(c *v1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = DefaultPullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = v1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = v1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = v1.ProtocolTCP
		}
	}
	for i := range c.Env {
		if ref := c.Env[i].ValueFrom; ref != nil && ref.FieldRef != nil && ref.FieldRef.APIVersion == "" {
			ref.FieldRef.APIVersion = "v1"
		}
	}
	for _, p := range []*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p != nil {
			DefaultProbe(p)
		}
	}
}

// DefaultProbe fills a probe's unset timings with the API server's defaults:
// every 10 s, 1 s to answer, 1 success, 3 failures, HTTP on path "/".
func DefaultProbe(p *v1.Probe) {
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	if p.HTTPGet != nil {
		if p.HTTPGet.Path == "" {
			p.HTTPGet.Path = "/"
		}
		if p.HTTPGet.Scheme == "" {
			p.HTTPGet.Scheme = v1.URISchemeHTTP
		}
	}
}

// DefaultPullPolicy is the API server's rule: Always for :latest or no tag,
// IfNotPresent otherwise (a digest counts as a tag).
func DefaultPullPolicy(image string) v1.PullPolicy {
	if strings.Contains(image, "@") {
		return v1.PullIfNotPresent
	}
	lastSlash := strings.LastIndex(image, "/")
	tagPart := image[lastSlash+1:]
	colon := strings.LastIndex(tagPart, ":")
	if colon < 0 || tagPart[colon+1:] == "latest" {
		return v1.PullAlways
	}
	return v1.PullIfNotPresent
}
