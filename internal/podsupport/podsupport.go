// Package podsupport refuses, before anything of a pod runs, a pod that
// sets a field knode does not implement.
//
// The kubelet implements every field of the pod API; a node agent that
// accepts a field and then drops it runs the container less confined,
// less limited or differently than its spec says, and nothing tells the
// user. So each field knode does not implement is named in Refused, with
// why; Check refuses a pod that sets one, and the pod ends Failed with the
// reason, in standalone and cluster mode alike. The README's table "Pod
// fields knode refuses" lists the same rows, and a test walks the pod API's
// structs by reflection so that a field added to the API is either
// implemented or refused, never silently dropped.
package podsupport

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/admission"
)

// ReasonNotSupported is the pod's status reason when it sets a field knode
// does not implement. The kubelet implements them all and has no reason of
// its own for this.
const ReasonNotSupported = "PodFieldNotSupported"

// The kubelet's admission reasons for a pod of another operating system
// (pkg/kubelet/lifecycle).
const (
	ReasonOSNotSupported      = "PodOSNotSupported"
	ReasonOSSelectorMismatch  = "PodOSSelectorNodeLabelDoesNotMatch"
	messageOSNotSupported     = "Failed to admit pod as the OS field doesn't match node OS"
	messageOSSelectorMismatch = "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"
)

// Refusal is why a pod is not admitted: the reason its status gets
// (Reason) and the message (Error).
type Refusal struct {
	reason, message string
}

// NewRefusal makes a refusal with a status reason and message.
func NewRefusal(reason, message string) *Refusal {
	return &Refusal{reason: reason, message: message}
}

func (r *Refusal) Error() string { return r.message }

// Reason is the pod status reason.
func (r *Refusal) Reason() string { return r.reason }

// AdmitWith makes a check an admission handler: a refusal (an error with
// a Reason method) refuses the pod with that reason and message; another
// error refuses it as the kubelet's UnexpectedAdmissionError.
func AdmitWith(check func(pod *v1.Pod) error) admission.Handler {
	return admission.HandlerFunc(func(attrs *admission.Attrs) (bool, string, string) {
		err := check(attrs.Pod)
		if err == nil {
			return true, "", ""
		}
		var r interface{ Reason() string }
		if errors.As(err, &r) {
			return false, r.Reason(), err.Error()
		}
		return false, "UnexpectedAdmissionError", err.Error()
	})
}

// Field is one pod field knode refuses.
type Field struct {
	// Path names the field with the API's JSON names from the pod; "[*]"
	// stands for every element of a list. Paths under spec.containers[*]
	// apply to init and ephemeral containers too.
	Path string
	// When says which values are refused; nil refuses any value that is
	// set (not the zero value).
	When func(v reflect.Value) bool
	// Why is the end of the message: what knode lacks.
	Why string
	// Volumes marks a volume type or projection that Check leaves to the
	// pod's volume check (crispec.CheckVolumes): as the kubelet's volume
	// manager, the pod stays Pending, its containers waiting in
	// CreateContainerConfigError with the type named, and a FailedMount
	// event says why.
	Volumes bool
}

// notBuilt is the Why of a field no part of knode implements yet.
const notBuilt = "knode does not implement it yet"

// Refused is every pod field knode refuses when set. Each row is a line
// of the README's table "Pod fields knode refuses"; remove the row when
// the field is implemented. Check refuses them at admission, except the
// volume rows, which the pod's volume check refuses as the kubelet would.
var Refused = []Field{
	{Path: "spec.resourceClaims", Why: "dynamic resource allocation is not implemented"},
	{Path: "spec.resources", Why: "pod-level resources are not applied yet"},
	{Path: "spec.hostnameOverride", Why: notBuilt},
	{Path: "spec.evictionResponders", Why: notBuilt},
	{Path: "spec.securityContext.seLinuxChangePolicy", Why: "volumes are not relabelled for SELinux"},
	{Path: "spec.containers[*].restartPolicyRules", Why: notBuilt},
	{Path: "spec.containers[*].lifecycle.stopSignal", Why: "the kubelet's ContainerStopSignals (alpha, off by default) is not implemented"},
	{Path: "spec.containers[*].volumeDevices", Why: "block volumes are not supported"},
	{Path: "spec.volumes[*].persistentVolumeClaim", Why: "persistent volumes are not supported", Volumes: true},
	{Path: "spec.volumes[*].ephemeral", Why: "persistent volumes are not supported", Volumes: true},
	{Path: "spec.volumes[*].csi", Why: "CSI volumes are not supported", Volumes: true},
	{Path: "spec.volumes[*].image", Why: "image volumes are not supported", Volumes: true},
	{Path: "spec.volumes[*].nfs", Why: "network volumes are not supported", Volumes: true},
	{Path: "spec.volumes[*].iscsi", Why: "network volumes are not supported", Volumes: true},
	{Path: "spec.volumes[*].fc", Why: "network volumes are not supported", Volumes: true},
	{Path: "spec.volumes[*].gitRepo", Why: "the kubelet's gitRepo volume is disabled by default and not implemented", Volumes: true},
	{Path: "spec.volumes[*].emptyDir.medium", When: notMemoryMedium, Why: "only the default medium and Memory are supported"},
	{Path: "spec.volumes[*].projected.sources[*].clusterTrustBundle", Why: "clusterTrustBundle projections are not supported", Volumes: true},
	{Path: "spec.volumes[*].projected.sources[*].podCertificate", Why: "podCertificate projections are not supported", Volumes: true},
	// The in-tree drivers: the kubelet of v1.37 hands most to CSI drivers,
	// which knode does not run.
	{Path: "spec.volumes[*].gcePersistentDisk", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].awsElasticBlockStore", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].glusterfs", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].rbd", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].flexVolume", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].cinder", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].cephfs", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].flocker", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].azureFile", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].vsphereVolume", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].quobyte", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].azureDisk", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].photonPersistentDisk", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].portworxVolume", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].scaleIO", Why: inTree, Volumes: true},
	{Path: "spec.volumes[*].storageos", Why: inTree, Volumes: true},
}

const inTree = "in-tree volume drivers are not supported"

func notMemoryMedium(v reflect.Value) bool {
	m := v1.StorageMedium(v.String())
	return m != v1.StorageMediumDefault && m != v1.StorageMediumMemory
}

// Check refuses a pod that sets a field of Refused, naming the first such
// field (with its list indexes) and why, or a pod for another operating
// system, with the kubelet's reasons. It reads the spec only.
func Check(pod *v1.Pod) error {
	if pod.Spec.OS != nil && string(pod.Spec.OS.Name) != runtime.GOOS {
		return NewRefusal(ReasonOSNotSupported, messageOSNotSupported)
	}
	if os, ok := pod.Labels[v1.LabelOSStable]; ok && os != runtime.GOOS {
		return NewRefusal(ReasonOSSelectorMismatch, messageOSSelectorMismatch)
	}
	for _, f := range Refused {
		if f.Volumes {
			continue
		}
		if where, ok := Find(pod, f); ok {
			return NewRefusal(ReasonNotSupported, fmt.Sprintf("%s: the field %s is not supported by knode: %s", where, f.Path, f.Why))
		}
	}
	return nil
}

// Find reports where in pod the field f is set to a refused value, as a
// path with list indexes (spec.initContainers[1].resizePolicy).
func Find(pod *v1.Pod, f Field) (string, bool) {
	segs := strings.Split(f.Path, ".")
	if len(segs) < 2 || segs[0] != "spec" {
		return "", false
	}
	spec := reflect.ValueOf(&pod.Spec).Elem()
	if segs[1] == "containers[*]" {
		// A container field: in every kind of container of the pod.
		for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
			if where, ok := find(spec.FieldByName(goName(spec.Type(), list)), "spec."+list, segs[2:], f.When, true); ok {
				return where, true
			}
		}
		return "", false
	}
	return find(spec, "spec", segs[1:], f.When, false)
}

// find looks for a set value at segs beneath v; where is v's path. With
// list, v is a list whose every element is looked at.
func find(v reflect.Value, where string, segs []string, when func(reflect.Value) bool, list bool) (string, bool) {
	if list {
		for i := 0; i < v.Len(); i++ {
			if w, ok := find(v.Index(i), where+"["+strconv.Itoa(i)+"]", segs, when, false); ok {
				return w, true
			}
		}
		return "", false
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "", false
		}
		v = v.Elem()
	}
	if len(segs) == 0 {
		if when != nil {
			return where, when(v)
		}
		return where, !v.IsZero()
	}
	if v.Kind() != reflect.Struct {
		return "", false
	}
	name, each := strings.CutSuffix(segs[0], "[*]")
	field, ok := fieldByJSON(v, name)
	if !ok {
		return "", false
	}
	return find(field, where+"."+name, segs[1:], when, each)
}

// fieldByJSON is the field of struct v whose JSON name is name, looking
// into inlined structs (EphemeralContainer's EphemeralContainerCommon).
func fieldByJSON(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if tag == name {
			return v.Field(i), true
		}
		if tag == "" && sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			if f, ok := fieldByJSON(v.Field(i), name); ok {
				return f, true
			}
		}
	}
	return reflect.Value{}, false
}

// goName is the Go name of the field of t with JSON name name.
func goName(t reflect.Type, name string) string {
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); tag == name {
			return t.Field(i).Name
		}
	}
	return ""
}

// JSONName is the JSON name of a struct field ("" for an inlined struct).
func JSONName(sf reflect.StructField) string {
	tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
	return tag
}
