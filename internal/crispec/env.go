package crispec

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
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
}

// Env resolves a container's env as the kubelet's makeEnvironmentVariables
// does: envFrom first (each key under its prefix, a later source winning),
// then the env entries, which override envFrom; a literal value expands
// $(VAR) against envFrom and the earlier entries. The kubelet's order is a
// map's; here it is envFrom's keys (sorted within each source) followed by
// env's, a later duplicate replacing the earlier in place, so a config is
// reproducible.
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
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			// No name check: since RelaxedEnvironmentVariableValidation
			// the kubelet takes every key (with its prefix) as it is.
			set(ef.Prefix+k, data[k])
		}
	}
	for i, e := range c.Env {
		var val string
		switch {
		case e.ValueFrom == nil || e.Value != "":
			val = Expand(e.Value, func(name string) (string, bool) {
				v, ok := values[name]
				return v, ok
			})
		case e.ValueFrom.FieldRef != nil:
			v, err := PodField(pod, e.ValueFrom.FieldRef.FieldPath, podIP, node)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			val = v
		case e.ValueFrom.ResourceFieldRef != nil:
			v, err := ResourceField(pod, c, e.ValueFrom.ResourceFieldRef, node)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			val = v
		case e.ValueFrom.ConfigMapKeyRef != nil, e.ValueFrom.SecretKeyRef != nil:
			v, ok := src.Refs[i]
			if !ok {
				continue
			}
			val = v
		default:
			return nil, fmt.Errorf("env %s: only value, fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef are supported", e.Name)
		}
		set(e.Name, val)
	}
	return out, nil
}

// PodField resolves a downward API fieldRef of pod without an API server;
// podIP is the sandbox's address (the node's for a host-network pod).
func PodField(pod *v1.Pod, path, podIP string, node Node) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
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
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	return key, ok
}

// ResourceField resolves a resourceFieldRef of c (or the container it
// names); a missing limit is the node's capacity, as with the kubelet.
func ResourceField(pod *v1.Pod, c *v1.Container, ref *v1.ResourceFieldSelector, node Node) (string, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		found := false
		for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range list {
				if list[i].Name == ref.ContainerName {
					c, found = &list[i], true
				}
			}
		}
		if !found {
			return "", fmt.Errorf("resourceFieldRef: container %q not found", ref.ContainerName)
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	var q resource.Quantity
	var ok bool
	switch ref.Resource {
	case "limits.cpu":
		q, ok = c.Resources.Limits[v1.ResourceCPU]
		if !ok {
			q = *resource.NewQuantity(int64(node.CPUs), resource.DecimalSI)
		}
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	case "requests.cpu":
		q, ok = c.Resources.Requests[v1.ResourceCPU]
		if !ok {
			q = resource.MustParse("0")
		}
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	case "limits.memory":
		q, ok = c.Resources.Limits[v1.ResourceMemory]
		if !ok {
			q = *resource.NewQuantity(node.MemoryBytes, resource.BinarySI)
		}
	case "requests.memory":
		q = c.Resources.Requests[v1.ResourceMemory]
	case "limits.ephemeral-storage":
		q = c.Resources.Limits[v1.ResourceEphemeralStorage]
	case "requests.ephemeral-storage":
		q = c.Resources.Requests[v1.ResourceEphemeralStorage]
	default:
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
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
