package migrate

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"knode.io/knode/internal/checkpoint/format"
	"knode.io/knode/internal/restore"
)

// RestoreManifest writes the static pod that resumes archive: one container
// with the name, image and command recorded in the archive, restored
// through the restore annotation (so the manifest keeps a normal image).
func RestoreManifest(d *format.Details, archive, podName, namespace string) ([]byte, error) {
	if d.ContainerName == "" || d.Image == "" {
		return nil, fmt.Errorf("the archive does not record its container's name and image")
	}
	// The name comes from the archive: it becomes an annotation key and a container name.
	if msgs := validation.IsDNS1123Label(d.ContainerName); len(msgs) > 0 {
		return nil, fmt.Errorf("the archive's container name %q: %s", d.ContainerName, strings.Join(msgs, "; "))
	}
	if namespace == "" {
		namespace = format.FirstNonEmpty(d.PodNamespace, "default")
	}
	pod := map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"name":      podName,
			"namespace": namespace,
			"annotations": map[string]string{
				restore.AnnotationPrefix + d.ContainerName: archive,
			},
		},
		"spec": map[string]any{
			"containers": []map[string]any{{
				"name":    d.ContainerName,
				"image":   d.Image,
				"command": d.Command,
			}},
		},
	}
	return json.MarshalIndent(pod, "", "  ")
}
