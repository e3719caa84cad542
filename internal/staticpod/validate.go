package staticpod

import (
	"path"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"knode.io/knode/internal/podpath"
)

// Validate checks the parts of a pod that knode acts on. It is a subset of
// the API server's validation: enough that nothing invalid reaches the
// runtime, with the API server's field paths in each message.
func Validate(pod *v1.Pod) field.ErrorList {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	for _, msg := range validation.IsDNS1123Subdomain(pod.Name) {
		errs = append(errs, field.Invalid(meta.Child("name"), pod.Name, msg))
	}
	for _, msg := range validation.IsDNS1123Label(pod.Namespace) {
		errs = append(errs, field.Invalid(meta.Child("namespace"), pod.Namespace, msg))
	}
	// The UID names the pod's directory on the host; a manifest may set it.
	for _, msg := range podpath.UID(string(pod.UID)) {
		errs = append(errs, field.Invalid(meta.Child("uid"), pod.UID, msg))
	}
	spec := field.NewPath("spec")
	switch pod.Spec.RestartPolicy {
	case v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(spec.Child("restartPolicy"), pod.Spec.RestartPolicy,
			[]string{string(v1.RestartPolicyAlways), string(v1.RestartPolicyOnFailure), string(v1.RestartPolicyNever)}))
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		errs = append(errs, field.Invalid(spec.Child("terminationGracePeriodSeconds"), *g, "must be >= 0"))
	}
	volumes := map[string]bool{}
	for i, vol := range pod.Spec.Volumes {
		p := spec.Child("volumes").Index(i)
		for _, msg := range validation.IsDNS1123Label(vol.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), vol.Name, msg))
		}
		if volumes[vol.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), vol.Name))
		}
		volumes[vol.Name] = true
		switch {
		case vol.HostPath != nil:
			if !path.IsAbs(vol.HostPath.Path) {
				errs = append(errs, field.Invalid(p.Child("hostPath", "path"), vol.HostPath.Path, "must be an absolute path"))
			}
		case vol.EmptyDir != nil, vol.DownwardAPI != nil:
		default:
			// ConfigMap, Secret and projected volumes need API objects a
			// static pod may not reference.
			errs = append(errs, field.Forbidden(p, "only hostPath, emptyDir and downwardAPI volumes are supported for static pods"))
		}
	}
	if len(pod.Spec.Containers) == 0 {
		errs = append(errs, field.Required(spec.Child("containers"), "a pod needs at least one container"))
	}
	names := map[string]bool{}
	validateContainers := func(list []v1.Container, p *field.Path) {
		for i := range list {
			errs = append(errs, validateContainer(&list[i], p.Index(i), names, volumes)...)
		}
	}
	validateContainers(pod.Spec.InitContainers, spec.Child("initContainers"))
	validateContainers(pod.Spec.Containers, spec.Child("containers"))
	if len(pod.Spec.ImagePullSecrets) > 0 {
		// The node's own config.json serves static pods' registries.
		errs = append(errs, field.Forbidden(spec.Child("imagePullSecrets"), "static pods cannot reference Secrets"))
	}
	if len(pod.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(spec.Child("ephemeralContainers"), "ephemeral containers cannot be declared in a static pod"))
	}
	return append(errs, validateHostUsers(pod, spec)...)
}

// validateHostUsers applies the API server's rules for user namespaces:
// a pod with its own (hostUsers false) shares no other host namespace and
// has no block devices; an Unmasked /proc needs one.
func validateHostUsers(pod *v1.Pod, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	hostUsers := pod.Spec.HostUsers == nil || *pod.Spec.HostUsers
	if !hostUsers {
		for _, shared := range []struct {
			name string
			on   bool
		}{{"hostNetwork", pod.Spec.HostNetwork}, {"HostPID", pod.Spec.HostPID}, {"HostIPC", pod.Spec.HostIPC}} {
			if shared.on {
				errs = append(errs, field.Forbidden(spec.Child(shared.name), "when `hostUsers` is false"))
			}
		}
	}
	for _, list := range []struct {
		name       string
		containers []v1.Container
	}{{"initContainers", pod.Spec.InitContainers}, {"containers", pod.Spec.Containers}} {
		for i, c := range list.containers {
			p := spec.Child(list.name).Index(i)
			if !hostUsers && len(c.VolumeDevices) > 0 {
				errs = append(errs, field.Forbidden(p.Child("volumeDevices"), "when `hostUsers` is false"))
			}
			if hostUsers && c.SecurityContext != nil && c.SecurityContext.ProcMount != nil && *c.SecurityContext.ProcMount == v1.UnmaskedProcMount {
				errs = append(errs, field.Invalid(p.Child("securityContext", "procMount"), *c.SecurityContext.ProcMount, "`hostUsers` must be false to use `Unmasked`"))
			}
		}
	}
	return errs
}

func validateContainer(c *v1.Container, p *field.Path, names, volumes map[string]bool) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(c.Name) {
		errs = append(errs, field.Invalid(p.Child("name"), c.Name, msg))
	}
	if names[c.Name] {
		errs = append(errs, field.Duplicate(p.Child("name"), c.Name))
	}
	names[c.Name] = true
	if c.Image == "" {
		errs = append(errs, field.Required(p.Child("image"), ""))
	}
	switch c.ImagePullPolicy {
	case v1.PullAlways, v1.PullIfNotPresent, v1.PullNever:
	default:
		errs = append(errs, field.NotSupported(p.Child("imagePullPolicy"), c.ImagePullPolicy,
			[]string{string(v1.PullAlways), string(v1.PullIfNotPresent), string(v1.PullNever)}))
	}
	for i, port := range c.Ports {
		pp := p.Child("ports").Index(i)
		for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
			errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
		}
		if port.HostPort != 0 {
			for _, msg := range validation.IsValidPortNum(int(port.HostPort)) {
				errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, msg))
			}
		}
	}
	for i, env := range c.Env {
		ep := p.Child("env").Index(i)
		if env.Name == "" {
			errs = append(errs, field.Required(ep.Child("name"), ""))
		}
		if env.ValueFrom != nil && (env.ValueFrom.ConfigMapKeyRef != nil || env.ValueFrom.SecretKeyRef != nil) {
			errs = append(errs, field.Forbidden(ep.Child("valueFrom"), "static pods cannot reference ConfigMaps or Secrets"))
		}
	}
	if len(c.EnvFrom) > 0 {
		errs = append(errs, field.Forbidden(p.Child("envFrom"), "static pods cannot reference ConfigMaps or Secrets"))
	}
	for i, m := range c.VolumeMounts {
		mp := p.Child("volumeMounts").Index(i)
		if !volumes[m.Name] {
			errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
		}
		if !path.IsAbs(m.MountPath) {
			errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be an absolute path"))
		}
	}
	// The API server's rule: a negative quantity would reach the runtime
	// (a memory limit of -1 is its "unlimited") or lower the node's count
	// of what its pods request.
	for _, l := range []struct {
		name string
		list v1.ResourceList
	}{{"requests", c.Resources.Requests}, {"limits", c.Resources.Limits}} {
		for name, q := range l.list {
			if q.Sign() < 0 {
				errs = append(errs, field.Invalid(p.Child("resources", l.name).Key(string(name)), q.String(), "must be greater than or equal to 0"))
			}
		}
	}
	if c.RestartPolicy != nil && *c.RestartPolicy != v1.ContainerRestartPolicyAlways {
		errs = append(errs, field.NotSupported(p.Child("restartPolicy"), *c.RestartPolicy, []string{string(v1.ContainerRestartPolicyAlways)}))
	}
	if lc := c.Lifecycle; lc != nil {
		for _, h := range []struct {
			name    string
			handler *v1.LifecycleHandler
		}{{"postStart", lc.PostStart}, {"preStop", lc.PreStop}} {
			if h.handler != nil && countSet(h.handler.Exec != nil, h.handler.HTTPGet != nil, h.handler.TCPSocket != nil, h.handler.Sleep != nil) != 1 {
				errs = append(errs, field.Required(p.Child("lifecycle", h.name), "must have exactly one handler: exec, httpGet, tcpSocket or sleep"))
			}
		}
	}
	for _, pr := range []struct {
		name  string
		probe *v1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}} {
		if pr.probe != nil {
			errs = append(errs, validateProbe(p.Child(pr.name), pr.probe, pr.name != "readinessProbe")...)
		}
	}
	return errs
}

// validateProbe applies the API server's rules for a probe.
func validateProbe(p *field.Path, probe *v1.Probe, successMustBeOne bool) field.ErrorList {
	var errs field.ErrorList
	if countSet(probe.Exec != nil, probe.HTTPGet != nil, probe.TCPSocket != nil, probe.GRPC != nil) != 1 {
		errs = append(errs, field.Required(p, "must have exactly one handler: exec, httpGet, tcpSocket or grpc"))
	}
	if probe.Exec != nil && len(probe.Exec.Command) == 0 {
		errs = append(errs, field.Required(p.Child("exec", "command"), ""))
	}
	for _, f := range []struct {
		name  string
		value int32
	}{{"initialDelaySeconds", probe.InitialDelaySeconds}, {"timeoutSeconds", probe.TimeoutSeconds}, {"periodSeconds", probe.PeriodSeconds},
		{"successThreshold", probe.SuccessThreshold}, {"failureThreshold", probe.FailureThreshold}} {
		if f.value < 0 {
			errs = append(errs, field.Invalid(p.Child(f.name), f.value, "must be greater than or equal to 0"))
		}
	}
	if successMustBeOne && probe.SuccessThreshold > 1 {
		errs = append(errs, field.Invalid(p.Child("successThreshold"), probe.SuccessThreshold, "must be 1"))
	}
	return errs
}

func countSet(set ...bool) int {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}
