// Package podpath checks the pod fields knode builds host paths from, before
// any path is built.
//
// A pod's UID, namespace and name become directory names on the host
// (<root-dir>/pods/<uid>, <pod-logs-dir>/<ns>_<name>_<uid>/<container>), and
// a static pod's manifest may set all of them. The API server validates
// names but never a UID's form, so a manifest with `metadata.uid:
// ../../etc` would otherwise name a directory anywhere. Every source's pods
// pass through Check; a pod that fails it never reaches a worker.
package podpath

import (
	"fmt"
	"regexp"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// MaxUIDLength bounds a UID: a UUID has 36 characters; room is left for
// other generators, not for paths.
const MaxUIDLength = 128

var uidPattern = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$`)

// UID lists what is wrong with uid as one directory name: letters, digits,
// '-', '_' and '.', starting and ending with a letter or digit (so never "."
// or ".." and never a '/').
func UID(uid string) []string {
	var errs []string
	if len(uid) > MaxUIDLength {
		errs = append(errs, fmt.Sprintf("must be no more than %d characters", MaxUIDLength))
	}
	if !uidPattern.MatchString(uid) {
		errs = append(errs, "must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit (for example a UUID)")
	}
	return errs
}

// Check refuses a pod whose UID, namespace, name or container names could
// not each be one directory or file name, naming the first bad field as the
// API server would.
func Check(pod *v1.Pod) error {
	if errs := UID(string(pod.UID)); len(errs) > 0 {
		return fmt.Errorf("metadata.uid: Invalid value: %q: %s", pod.UID, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(pod.Namespace); len(errs) > 0 {
		return fmt.Errorf("metadata.namespace: Invalid value: %q: %s", pod.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(pod.Name); len(errs) > 0 {
		return fmt.Errorf("metadata.name: Invalid value: %q: %s", pod.Name, strings.Join(errs, "; "))
	}
	named := []struct {
		kind  string
		names []string
	}{
		{"init container", containerNames(pod.Spec.InitContainers)},
		{"container", containerNames(pod.Spec.Containers)},
		{"ephemeral container", ephemeralNames(pod.Spec.EphemeralContainers)},
		{"volume", volumeNames(pod.Spec.Volumes)},
	}
	for _, group := range named {
		for _, name := range group.names {
			if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
				return fmt.Errorf("%s name: Invalid value: %q: %s", group.kind, name, strings.Join(errs, "; "))
			}
		}
	}
	return nil
}

func containerNames(list []v1.Container) []string {
	names := make([]string, len(list))
	for i := range list {
		names[i] = list[i].Name
	}
	return names
}

func ephemeralNames(list []v1.EphemeralContainer) []string {
	names := make([]string, len(list))
	for i := range list {
		names[i] = list[i].Name
	}
	return names
}

func volumeNames(list []v1.Volume) []string {
	names := make([]string, len(list))
	for i := range list {
		names[i] = list[i].Name
	}
	return names
}
