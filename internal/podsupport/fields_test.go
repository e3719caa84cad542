package podsupport

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/crispec"
)

// implemented says, for every pod field knode does not refuse, where it is
// implemented — or, for a field the node has nothing to do with, why the
// kubelet does not act on it either. One line per field; a field in
// neither this list nor Refused fails TestEveryFieldAccountedFor.
var implemented = map[string]string{
	// v1.PodSpec
	"spec.volumes":                       "internal/pods containerMounts (emptyDir, hostPath) and internal/apivolume (configMap, secret, projected, downwardAPI); the other types are in Refused",
	"spec.initContainers":                "internal/pods syncInit: in order, restartable sidecars",
	"spec.containers":                    "internal/pods syncApps",
	"spec.ephemeralContainers":           "internal/pods ephemeral (kubectl debug: started in the running pod, target PID namespace)",
	"spec.imagePullSecrets":              "internal/pods pullsecrets, internal/keyring (the kubelet's keyring)",
	"spec.overhead":                      "internal/admission predicates (resource fit), internal/qos PodResources (the pod cgroup's limits), internal/pods allocations",
	"spec.activeDeadlineSeconds":         "internal/pods lifecycle activeDeadline (Failed, DeadlineExceeded, containers stopped)",
	"spec.readinessGates":                "internal/pods lifecycle readinessGates (the Ready condition; the gates' conditions kept in cluster mode)",
	"spec.runtimeClassName":              "internal/pods runtimeHandler (CRI RunPodSandbox's handler), internal/cluster RuntimeClasses (a GET with a small cache); unresolved: no sandbox",
	"spec.restartPolicy":                 "internal/pods shouldRestart and terminalPhase",
	"spec.terminationGracePeriodSeconds": "internal/crispec GracePeriod, internal/pods killPod",
	"spec.dnsPolicy":                     "internal/crispec DNS (ClusterFirst, ClusterFirstWithHostNet, Default, None)",
	"spec.dnsConfig":                     "internal/crispec DNS",
	"spec.nodeSelector":                  "internal/admission Predicates: re-checked at admission as the kubelet does (NodeAffinity)",
	"spec.affinity":                      "internal/admission Predicates: required node affinity re-checked at admission (NodeAffinity); the rest is the scheduler's",
	"spec.tolerations":                   "internal/admission Predicates: NoExecute taints of the Node object re-checked at admission (TaintToleration), static pods exempt",
	"spec.serviceAccountName":            "internal/crispec env (fieldRef spec.serviceAccountName), internal/apivolume (serviceAccountToken)",
	"spec.serviceAccount":                "deprecated alias the API server keeps equal to serviceAccountName",
	"spec.automountServiceAccountToken":  "the API server's: its ServiceAccount admission adds the token volume or not; the kubelet does not read it",
	"spec.nodeName":                      "internal/cluster: the pods bound to this node (a field selector)",
	"spec.hostNetwork":                   "internal/crispec namespaceOptions, DNS, hosts",
	"spec.hostPID":                       "internal/crispec namespaceOptions",
	"spec.hostIPC":                       "internal/crispec namespaceOptions",
	"spec.shareProcessNamespace":         "internal/crispec namespaceOptions",
	"spec.securityContext":               "the spec.securityContext.* fields below",
	"spec.hostname":                      "internal/crispec HostnameAndDomain",
	"spec.subdomain":                     "internal/crispec HostnameAndDomain",
	"spec.setHostnameAsFQDN":             "internal/crispec KernelHostname",
	"spec.hostAliases":                   "internal/crispec EtcHosts",
	"spec.schedulerName":                 "scheduler's: picks the scheduler; the kubelet does not read it",
	"spec.priorityClassName":             "the API server's Priority admission resolves it into spec.priority",
	"spec.priority":                      "internal/eviction (which pod goes first), critical pods",
	"spec.preemptionPolicy":              "scheduler's: the kubelet does not read it",
	"spec.topologySpreadConstraints":     "scheduler's: the kubelet does not read it",
	"spec.schedulingGates":               "scheduler's: a gated pod is not bound to a node",
	"spec.schedulingGroup":               "scheduler's (gang scheduling): the kubelet does not read it",
	"spec.os":                            "podsupport.Check: linux is admitted, another OS refused with the kubelet's PodOSNotSupported",
	"spec.hostUsers":                     "false: internal/userns (the pod's own ID range, kept in its directory) and crispec SandboxUserNamespace/ContainerUserNamespace, on a runtime handler that supports it",
	"spec.enableServiceLinks":            "internal/pods serviceenv (the docker-link variables of the namespace's Services)",

	// v1.Container (and the same fields of init and ephemeral containers)
	"spec.containers[*].name":                     "internal/crispec Container (metadata, labels)",
	"spec.containers[*].image":                    "internal/crispec Container, internal/pods ensureImage",
	"spec.containers[*].command":                  "internal/crispec Container ($(VAR) expansion)",
	"spec.containers[*].args":                     "internal/crispec Container ($(VAR) expansion)",
	"spec.containers[*].workingDir":               "internal/crispec Container",
	"spec.containers[*].ports":                    "internal/crispec Sandbox (hostPort mappings), ports annotation",
	"spec.containers[*].envFrom":                  "internal/pods envSources, internal/crispec Env",
	"spec.containers[*].env":                      "internal/crispec Env, internal/pods envSources",
	"spec.containers[*].resources":                "internal/crispec linuxResources, internal/devicemanager (extended resources)",
	"spec.containers[*].resizePolicy":             "internal/pods resize (in-place resize through UpdateContainerResources)",
	"spec.containers[*].restartPolicy":            "internal/pods isSidecar (restartable init containers)",
	"spec.containers[*].volumeMounts":             "internal/pods containerMounts, internal/crispec Mount, internal/subpath",
	"spec.containers[*].livenessProbe":            "internal/pods probes, internal/prober",
	"spec.containers[*].readinessProbe":           "internal/pods probes, internal/prober",
	"spec.containers[*].startupProbe":             "internal/pods probes, internal/prober",
	"spec.containers[*].lifecycle":                "internal/pods hooks (postStart, preStop)",
	"spec.containers[*].terminationMessagePath":   "internal/crispec termination, internal/pods termination",
	"spec.containers[*].terminationMessagePolicy": "internal/pods termination (FallbackToLogsOnError)",
	"spec.containers[*].imagePullPolicy":          "internal/pods ensureImage",
	"spec.containers[*].securityContext":          "the spec.containers[*].securityContext.* fields below",
	"spec.containers[*].stdin":                    "internal/crispec Container",
	"spec.containers[*].stdinOnce":                "internal/crispec Container",
	"spec.containers[*].tty":                      "internal/crispec Container",

	// v1.PodSecurityContext
	"spec.securityContext.runAsUser":                "internal/crispec containerSecurityContext, sandboxSecurityContext",
	"spec.securityContext.runAsGroup":               "internal/crispec containerSecurityContext, sandboxSecurityContext",
	"spec.securityContext.runAsNonRoot":             "internal/crispec VerifyRunAsNonRoot against the image's user (CRI ImageStatus), CreateContainerConfigError",
	"spec.securityContext.supplementalGroups":       "internal/crispec supplementalGroups",
	"spec.securityContext.supplementalGroupsPolicy": "internal/crispec supplementalGroupsPolicy; Strict refused by internal/podsecurity when the runtime lacks it",
	"spec.securityContext.fsGroup":                  "internal/safefs SetGroupOwnership from internal/pods (emptyDir, once, with the kubelet's ready file) and internal/apivolume (after each write); internal/crispec supplementalGroups",
	"spec.securityContext.fsGroupChangePolicy":      "as the kubelet: the volumes knode makes (emptyDir, configMap, secret, projected, downwardAPI) are always walked, their plugins pass no policy; it matters for persistent volumes, which knode does not make",
	"spec.securityContext.sysctls":                  "internal/podsecurity Allowlist (SysctlForbidden), internal/crispec Sandbox",
	"spec.securityContext.seccompProfile":           "internal/crispec SeccompProfile",
	"spec.securityContext.appArmorProfile":          "internal/crispec appArmor; internal/podsecurity AppArmor refuses it on a host without AppArmor",
	"spec.securityContext.seLinuxOptions":           "internal/crispec seLinux (passed to the runtime)",
	"spec.securityContext.windowsOptions":           "Windows only: the kubelet on Linux does not read it (the API server forbids it with os linux)",

	// v1.SecurityContext
	"spec.containers[*].securityContext.capabilities":             "internal/crispec containerSecurityContext",
	"spec.containers[*].securityContext.privileged":               "internal/crispec containerSecurityContext, Sandbox",
	"spec.containers[*].securityContext.runAsUser":                "internal/crispec containerSecurityContext",
	"spec.containers[*].securityContext.runAsGroup":               "internal/crispec containerSecurityContext",
	"spec.containers[*].securityContext.runAsNonRoot":             "internal/crispec VerifyRunAsNonRoot",
	"spec.containers[*].securityContext.readOnlyRootFilesystem":   "internal/crispec containerSecurityContext",
	"spec.containers[*].securityContext.allowPrivilegeEscalation": "internal/crispec containerSecurityContext (no_new_privs)",
	"spec.containers[*].securityContext.procMount":                "internal/crispec procPaths: Default gets the kubelet's masked and read-only paths, Unmasked none (only with hostUsers false: the API server and staticpod.Validate check it)",
	"spec.containers[*].securityContext.seccompProfile":           "internal/crispec SeccompProfile",
	"spec.containers[*].securityContext.appArmorProfile":          "internal/crispec appArmor; internal/podsecurity AppArmor",
	"spec.containers[*].securityContext.seLinuxOptions":           "internal/crispec seLinux",
	"spec.containers[*].securityContext.windowsOptions":           "Windows only: the kubelet on Linux does not read it (the API server forbids it with os linux)",

	// v1.VolumeSource
	"spec.volumes[*].hostPath":    "internal/pods checkHostPath (types, *OrCreate beneath an opened parent)",
	"spec.volumes[*].emptyDir":    "internal/pods emptyDirPath (disk or tmpfs, sizeLimit by internal/eviction)",
	"spec.volumes[*].secret":      "internal/apivolume",
	"spec.volumes[*].configMap":   "internal/apivolume",
	"spec.volumes[*].downwardAPI": "internal/apivolume",
	"spec.volumes[*].projected":   "internal/apivolume (configMap, secret, downwardAPI, serviceAccountToken sources)",
}

// apiFields lists every field of the walked structs, by path.
func apiFields(t *testing.T) []string {
	t.Helper()
	var out []string
	add := func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			name := JSONName(typ.Field(i))
			if name == "" || name == "-" {
				t.Fatalf("%s.%s has no JSON name", typ.Name(), typ.Field(i).Name)
			}
			out = append(out, prefix+name)
		}
	}
	add("spec.", reflect.TypeOf(v1.PodSpec{}))
	add("spec.containers[*].", reflect.TypeOf(v1.Container{}))
	add("spec.securityContext.", reflect.TypeOf(v1.PodSecurityContext{}))
	add("spec.containers[*].securityContext.", reflect.TypeOf(v1.SecurityContext{}))
	add("spec.volumes[*].", reflect.TypeOf(v1.VolumeSource{}))
	// Ephemeral containers share the container's fields (Check looks at
	// them under the same paths); a field only they have must be listed.
	container := map[string]bool{}
	for i := 0; i < reflect.TypeOf(v1.Container{}).NumField(); i++ {
		container[JSONName(reflect.TypeOf(v1.Container{}).Field(i))] = true
	}
	ec := reflect.TypeOf(v1.EphemeralContainerCommon{})
	for i := 0; i < ec.NumField(); i++ {
		if name := JSONName(ec.Field(i)); !container[name] {
			out = append(out, "spec.ephemeralContainers[*]."+name)
		}
	}
	return out
}

func refusedPaths() map[string]Field {
	m := map[string]Field{}
	for _, f := range Refused {
		m[f.Path] = f
	}
	return m
}

// TestEveryFieldAccountedFor: every field of PodSpec, Container,
// PodSecurityContext, SecurityContext, VolumeSource (and
// EphemeralContainerCommon) is implemented (listed above with where) or
// refused (Refused and the README table), so a field added to the API
// cannot be silently dropped.
func TestEveryFieldAccountedFor(t *testing.T) {
	refused := refusedPaths()
	fields := map[string]bool{}
	for _, p := range apiFields(t) {
		fields[p] = true
		where, impl := implemented[p]
		f, ref := refused[p]
		switch {
		case !impl && !ref:
			t.Errorf("%s is neither implemented (list it in implemented, with where) nor refused (add it to Refused and the README's table)", p)
		case impl && ref && f.When == nil:
			t.Errorf("%s is both implemented (%s) and refused whatever its value", p, where)
		}
	}
	for p := range implemented {
		if !fields[p] {
			t.Errorf("implemented lists %s, which is not a field of the walked structs", p)
		}
	}
	seen := map[string]bool{}
	for _, f := range Refused {
		if seen[f.Path] {
			t.Errorf("Refused lists %s twice", f.Path)
		}
		seen[f.Path] = true
		if !resolves(reflect.TypeOf(v1.PodSpec{}), strings.Split(f.Path, ".")[1:]) {
			t.Errorf("Refused row %s names no field of the pod API", f.Path)
		}
	}
}

// resolves tells whether segs name a field beneath t (container paths are
// looked up in Container).
func resolves(t reflect.Type, segs []string) bool {
	for _, seg := range segs {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return false
		}
		name, _ := strings.CutSuffix(seg, "[*]")
		f, ok := fieldTypeByJSON(t, name)
		if !ok {
			return false
		}
		t = f
	}
	return true
}

func fieldTypeByJSON(t reflect.Type, name string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if JSONName(sf) == name {
			return sf.Type, true
		}
		if JSONName(sf) == "" && sf.Anonymous {
			if ft, ok := fieldTypeByJSON(sf.Type, name); ok {
				return ft, true
			}
		}
	}
	return nil, false
}

// readmeRows reads the paths of the README's table "Pod fields knode
// refuses" (every backquoted path in a row's first cell) and the rows.
func readmeRows(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "### Pod fields knode refuses")
	if start < 0 {
		t.Fatal(`README.md has no section "### Pod fields knode refuses"`)
	}
	text = text[start:]
	if end := strings.Index(text[4:], "\n#"); end >= 0 {
		text = text[:end+4]
	}
	rows := map[string]string{}
	code := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			if rows[m[1]] != "" {
				t.Errorf("README's table lists %s twice", m[1])
			}
			rows[m[1]] = line
		}
	}
	return rows
}

// TestReadmeTableIsRefused: the README's table and Refused name the same
// fields, and each row gives the reason the pod gets.
func TestReadmeTableIsRefused(t *testing.T) {
	rows := readmeRows(t)
	for _, f := range Refused {
		row, ok := rows[f.Path]
		if !ok {
			t.Errorf("Refused has %s; add it to the README's table", f.Path)
			continue
		}
		want := ReasonNotSupported
		if f.Volumes {
			want = "CreateContainerConfigError"
		}
		if !strings.Contains(row, want) {
			t.Errorf("README's row for %s does not say what happens (%s)", f.Path, want)
		}
	}
	refused := refusedPaths()
	for p := range rows {
		if _, ok := refused[p]; !ok {
			t.Errorf("README's table has %s, which Refused does not refuse (remove the row once it is implemented)", p)
		}
	}
}

// TestRefusedFieldsAreRefused sets each refused field, alone, in a pod that
// is otherwise admitted, and checks that Check refuses it naming the field;
// container fields are tried in an init container too.
func TestRefusedFieldsAreRefused(t *testing.T) {
	if err := Check(basePod()); err != nil {
		t.Fatalf("a plain pod is refused: %v", err)
	}
	for _, f := range Refused {
		paths := []string{f.Path}
		if rest, ok := strings.CutPrefix(f.Path, "spec.containers[*]."); ok {
			paths = append(paths, "spec.initContainers[*]."+rest)
		}
		for _, p := range paths {
			pod := basePod()
			if strings.HasPrefix(p, "spec.volumes[*].") {
				pod.Spec.Volumes = []v1.Volume{{Name: "v"}} // the one source set is the row's
			}
			if !setRefused(t, pod, p, f.When) {
				t.Errorf("%s: found no value the row refuses", p)
				continue
			}
			if f.Volumes {
				// Left to the pod's volume check, which names the type.
				name := p[strings.LastIndex(p, ".")+1:]
				if err := crispec.CheckVolumes(pod); err == nil || !strings.Contains(err.Error(), name) {
					t.Errorf("%s set: CheckVolumes = %v, want a refusal naming %s", p, err, name)
				}
				if err := Check(pod); err != nil {
					t.Errorf("%s set: Check refuses it too (%v); the volume check does", p, err)
				}
				continue
			}
			err := Check(pod)
			var r *Refusal
			if !errors.As(err, &r) || r.Reason() != ReasonNotSupported {
				t.Errorf("%s set: Check = %v, want a %s refusal", p, err, ReasonNotSupported)
				continue
			}
			if !strings.Contains(r.Error(), f.Path) || !strings.Contains(r.Error(), f.Why) {
				t.Errorf("%s set: message %q names neither the field nor why", p, r.Error())
			}
		}
	}
}

func TestValuesNotRefused(t *testing.T) {
	yes, no := true, false
	for name, mutate := range map[string]func(p *v1.Pod){
		"hostUsers true":  func(p *v1.Pod) { p.Spec.HostUsers = &yes },
		"hostUsers false": func(p *v1.Pod) { p.Spec.HostUsers = &no },
		"procMount Unmasked": func(p *v1.Pod) {
			p.Spec.HostUsers = &no
			um := v1.UnmaskedProcMount
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{ProcMount: &um}
		},
		"runAsNonRoot false":     func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: &no} },
		"emptyDir medium Memory": func(p *v1.Pod) { p.Spec.Volumes[0].EmptyDir.Medium = v1.StorageMediumMemory },
		"os linux":               func(p *v1.Pod) { p.Spec.OS = &v1.PodOS{Name: v1.Linux} },
		"os label linux":         func(p *v1.Pod) { p.Labels = map[string]string{v1.LabelOSStable: "linux"} },
		"serviceAccountToken": func(p *v1.Pod) {
			p.Spec.Volumes[0].VolumeSource = v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "t"}}}}}
		},
		"enableServiceLinks true": func(p *v1.Pod) { p.Spec.EnableServiceLinks = &yes },
	} {
		pod := basePod()
		mutate(pod)
		if err := Check(pod); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
}

func TestOtherOSRefusedAsTheKubelet(t *testing.T) {
	pod := basePod()
	pod.Spec.OS = &v1.PodOS{Name: v1.Windows}
	var r *Refusal
	if err := Check(pod); !errors.As(err, &r) || r.Reason() != "PodOSNotSupported" || r.Error() != "Failed to admit pod as the OS field doesn't match node OS" {
		t.Errorf("os windows: %v", err)
	}
	pod = basePod()
	pod.Labels = map[string]string{v1.LabelOSStable: "windows"}
	if err := Check(pod); !errors.As(err, &r) || r.Reason() != "PodOSSelectorNodeLabelDoesNotMatch" {
		t.Errorf("os label windows: %v", err)
	}
}

func TestMessageNamesTheInstance(t *testing.T) {
	pod := basePod()
	pod.Spec.InitContainers = []v1.Container{{Name: "a"}, {Name: "b", VolumeDevices: []v1.VolumeDevice{{Name: "d", DevicePath: "/dev/x"}}}}
	err := Check(pod)
	if err == nil || !strings.HasPrefix(err.Error(), "spec.initContainers[1].volumeDevices: ") {
		t.Errorf("Check = %v, want the message to start with spec.initContainers[1].volumeDevices", err)
	}
}

func basePod() *v1.Pod {
	pod := &v1.Pod{}
	pod.Name, pod.Namespace, pod.UID = "p", "default", "u"
	pod.Spec.Containers = []v1.Container{{Name: "c", Image: "busybox"}}
	pod.Spec.Volumes = []v1.Volume{{Name: "v", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	return pod
}

// setRefused sets the field at path in pod to a value when refuses (any
// set value when nil): filled with non-zero values, trying for a bool
// true then false, for a string "x" then the enum value Unmasked.
func setRefused(t *testing.T, pod *v1.Pod, path string, when func(reflect.Value) bool) bool {
	t.Helper()
	for _, b := range []bool{true, false} {
		str := "x"
		if !b {
			str = string(v1.UnmaskedProcMount)
		}
		v := reflect.ValueOf(&pod.Spec).Elem()
		segs := strings.Split(path, ".")[1:]
		for _, seg := range segs {
			name, each := strings.CutSuffix(seg, "[*]")
			for v.Kind() == reflect.Pointer {
				if v.IsNil() {
					v.Set(reflect.New(v.Type().Elem()))
				}
				v = v.Elem()
			}
			f, ok := fieldByJSON(v, name)
			if !ok {
				t.Fatalf("%s: no field %s", path, name)
			}
			v = f
			if each {
				if v.Len() == 0 {
					v.Set(reflect.MakeSlice(v.Type(), 1, 1))
				}
				v = v.Index(v.Len() - 1)
			}
		}
		fill(v, b, str)
		leaf := v
		for leaf.Kind() == reflect.Pointer {
			leaf = leaf.Elem()
		}
		if when == nil || when(leaf) {
			return true
		}
	}
	return false
}

// fill gives v a non-zero value (a bool gets b, a string str).
func fill(v reflect.Value, b bool, str string) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), b, str)
	case reflect.Bool:
		v.SetBool(b)
	case reflect.String:
		v.SetString(str)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), b, str)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, b, str)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, b, str)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).CanSet() && v.Field(i).Kind() != reflect.Struct {
				fill(v.Field(i), b, str)
				return
			}
		}
	}
}
