package crispec

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// EnvSources are the API-object values a container's env reads, resolved
// by the caller so that crispec stays free of API reads.
type EnvSources struct {
	// From holds, for each envFrom entry by index, the data of the
	// ConfigMap or Secret it names (a ConfigMap's data alone, no
	// binaryData, as the kubelet reads it); nil when an optional object is
	// missing, and then the entry adds nothing.
	From []map[string]string
	// Refs holds, for each env entry by index with a configMapKeyRef or
	// secretKeyRef, the key's value; an entry not in Refs is an optional
	// reference whose object or key is missing, which the kubelet leaves
	// out of the env altogether.
	Refs map[int]string
	// Services is the pod's service environment (ServiceEnv): the
	// container's own variables win over it, and its values expand in
	// theirs.
	Services map[string]string
}

// Env resolves a container's env as the kubelet's makeEnvironmentVariables
// does: envFrom first (each key under its prefix, a later source winning),
// then the env entries, which override envFrom; a literal value expands
// $(VAR) against envFrom, the earlier entries and then the service
// variables; last the service variables the container did not set itself.
// The kubelet's order is a map's; here it is envFrom's keys (sorted within
// each source) followed by env's, a later duplicate replacing the earlier
// in place, then the service variables sorted, so a config is
// reproducible. podIP is the sandbox's address, known once the sandbox
// runs, as in the kubelet (which builds the env after the sandbox too).
func Env(pod *v1.Pod, c *v1.Container, podIP string, node Node, src EnvSources) ([]*runtimeapi.KeyValue, error) {
	values := map[string]string{}
	var out []*runtimeapi.KeyValue
	set := func(name, val string) {
		if _, dup := values[name]; dup {
			// A later entry wins, as in the kubelet.
			for i := range out {
				if out[i].Key == name {
					out[i].Value = []byte(val)
				}
			}
		} else {
			out = append(out, &runtimeapi.KeyValue{Key: name, Value: []byte(val)})
		}
		values[name] = val
	}
	for i, ef := range c.EnvFrom {
		if i >= len(src.From) || src.From[i] == nil {
			continue
		}
		data := src.From[i]
		for _, k := range slices.Sorted(maps.Keys(data)) {
			// No name check: since RelaxedEnvironmentVariableValidation
			// the kubelet takes every key (with its prefix) as it is.
			set(ef.Prefix+k, data[k])
		}
	}
	lookup := func(name string) (string, bool) {
		if v, ok := values[name]; ok {
			return v, true
		}
		v, ok := src.Services[name]
		return v, ok
	}
	for i, e := range c.Env {
		var val string
		switch {
		case e.ValueFrom == nil || e.Value != "":
			val = Expand(e.Value, lookup)
		case e.ValueFrom.FieldRef != nil:
			v, err := EnvPodField(pod, e.ValueFrom.FieldRef, podIP, node)
			if err != nil {
				return nil, err
			}
			val = v
		case e.ValueFrom.ResourceFieldRef != nil:
			v, err := ResourceField(pod, c, e.ValueFrom.ResourceFieldRef, node)
			if err != nil {
				return nil, err
			}
			val = v
		case e.ValueFrom.ConfigMapKeyRef != nil, e.ValueFrom.SecretKeyRef != nil:
			v, ok := src.Refs[i]
			if !ok {
				continue
			}
			val = v
		case e.ValueFrom.FileKeyRef != nil:
			return nil, fmt.Errorf("env %s: fileKeyRef (the EnvFiles feature) is not supported by knode", e.Name)
		default:
			return nil, fmt.Errorf("env %s: only value, fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef are supported", e.Name)
		}
		set(e.Name, val)
	}
	for _, k := range slices.Sorted(maps.Keys(src.Services)) {
		if _, own := values[k]; !own {
			out = append(out, &runtimeapi.KeyValue{Key: k, Value: []byte(src.Services[k])})
		}
	}
	return out, nil
}

// EnvPodField resolves an env var's fieldRef as the kubelet's
// podFieldSelectorRuntimeValue: the API version must be v1 (empty, in a
// static pod the API server did not default, counts as v1). knode's pod
// network has one address family, so status.podIPs is podIP and
// status.hostIPs the node's address.
func EnvPodField(pod *v1.Pod, ref *v1.ObjectFieldSelector, podIP string, node Node) (string, error) {
	if ref.APIVersion != "" && ref.APIVersion != "v1" {
		return "", fmt.Errorf("unsupported pod version: %s", ref.APIVersion)
	}
	return PodField(pod, ref.FieldPath, podIP, node)
}

// PodField resolves a downward API field path of pod, as env vars and
// downwardAPI volumes see it; podIP is the sandbox's address (the node's
// for a host-network pod). Whole labels and annotations are the
// kubelet's key="value" lines.
func PodField(pod *v1.Pod, path, podIP string, node Node) (string, error) {
	if field, key, ok := subscript(path); ok {
		switch field {
		case "metadata.annotations":
			if errs := validation.IsQualifiedName(strings.ToLower(key)); len(errs) != 0 {
				return "", fmt.Errorf("invalid key subscript in %s: %s", path, strings.Join(errs, ";"))
			}
			return pod.Annotations[key], nil
		case "metadata.labels":
			if errs := validation.IsQualifiedName(key); len(errs) != 0 {
				return "", fmt.Errorf("invalid key subscript in %s: %s", path, strings.Join(errs, ";"))
			}
			return pod.Labels[key], nil
		default:
			return "", fmt.Errorf("field label does not support subscript: %s", path)
		}
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return FormatMap(pod.Labels), nil
	case "metadata.annotations":
		return FormatMap(pod.Annotations), nil
	case "spec.nodeName", "spec.host":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return node.HostIP, nil
	case "status.podIP", "status.podIPs":
		if pod.Spec.HostNetwork {
			return node.HostIP, nil
		}
		return podIP, nil
	}
	return "", fmt.Errorf("unsupported fieldPath: %v", path)
}

// FormatMap renders labels or annotations as the kubelet does: key="value"
// lines (Go-quoted values), sorted by key, no final newline.
func FormatMap(m map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// subscript splits `field['key']`.
func subscript(path string) (field, key string, ok bool) {
	open := strings.Index(path, "['")
	if open < 0 || !strings.HasSuffix(path, "']") || open+2 > len(path)-2 {
		return "", "", false
	}
	return path[:open], path[open+2 : len(path)-2], true
}

// allocatable is what the node offers pods, which the kubelet puts in
// place of a container's missing (or zero) cpu, memory and
// ephemeral-storage limits for the downward API. knode reports no
// ephemeral-storage, so that limit stays unset.
func allocatable(node Node) v1.ResourceList {
	return v1.ResourceList{
		v1.ResourceCPU:    *resource.NewQuantity(int64(node.CPUs), resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(node.MemoryBytes, resource.BinarySI),
	}
}

// withDefaultLimits is the kubelet's MergeContainerResourceLimits.
func withDefaultLimits(c *v1.Container, node Node) *v1.Container {
	out := c.DeepCopy()
	if out.Resources.Limits == nil {
		out.Resources.Limits = v1.ResourceList{}
	}
	for name, q := range allocatable(node) {
		if l, ok := out.Resources.Limits[name]; !ok || l.IsZero() {
			out.Resources.Limits[name] = q
		}
	}
	return out
}

// ResourceField resolves an env var's resourceFieldRef as the kubelet
// does: without containerName it reads c with the node's allocatable in
// place of missing limits; with one it reads that container of the pod
// (app containers first), where the kubelet puts the defaults into app
// containers only.
func ResourceField(pod *v1.Pod, c *v1.Container, ref *v1.ResourceFieldSelector, node Node) (string, error) {
	if ref.ContainerName == "" {
		return resourceValue(ref, withDefaultLimits(c, node))
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == ref.ContainerName {
			return resourceValue(ref, withDefaultLimits(&pod.Spec.Containers[i], node))
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == ref.ContainerName {
			return resourceValue(ref, &pod.Spec.InitContainers[i])
		}
	}
	return "", fmt.Errorf("container %s not found", ref.ContainerName)
}

// VolumeResourceField resolves a downwardAPI volume item's
// resourceFieldRef (containerName is required there): the named container,
// app or init, with the node's allocatable in place of missing limits.
func VolumeResourceField(pod *v1.Pod, ref *v1.ResourceFieldSelector, node Node) (string, error) {
	for _, list := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == ref.ContainerName {
				return resourceValue(ref, withDefaultLimits(&list[i], node))
			}
		}
	}
	return "", fmt.Errorf("container %s not found", ref.ContainerName)
}

// resourceValue is the kubelet's ExtractContainerResourceValue: the
// quantity divided by the divisor (1 when unset), rounded up; cpu in
// millicores before dividing.
func resourceValue(ref *v1.ResourceFieldSelector, c *v1.Container) (string, error) {
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	res := ref.Resource
	var list v1.ResourceList
	switch {
	case strings.HasPrefix(res, "limits."):
		list = c.Resources.Limits
	case strings.HasPrefix(res, "requests."):
		list = c.Resources.Requests
	default:
		return "", fmt.Errorf("unsupported container resource : %v", res)
	}
	name := v1.ResourceName(res[strings.Index(res, ".")+1:])
	q := list[name]
	switch {
	case name == v1.ResourceCPU:
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	case name == v1.ResourceMemory, name == v1.ResourceEphemeralStorage, strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix):
		return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
	}
	return "", fmt.Errorf("unsupported container resource : %v", res)
}

// EnvLookup looks variables up in a resolved env list.
func EnvLookup(envs []*runtimeapi.KeyValue) func(string) (string, bool) {
	m := make(map[string]string, len(envs))
	for _, kv := range envs {
		m[kv.Key] = string(kv.Value)
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// ExpandAll applies Expand to each of in.
func ExpandAll(in []string, lookup func(string) (string, bool)) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = Expand(s, lookup)
	}
	return out
}

// Expand applies Kubernetes' $(VAR) rules: a defined variable is replaced,
// $$ escapes a dollar, and anything else is left exactly as written.
func Expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
