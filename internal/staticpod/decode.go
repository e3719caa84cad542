// Package staticpod is the file source of pods: it reads the manifest
// directory, turns each file into a Pod the way the kubelet does (name
// suffix, default namespace, deterministic UID, config annotations), and
// publishes the whole set whenever the directory changes.
package staticpod

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"knode.io/knode/internal/podsource"
)

// Decode turns one manifest into a defaulted, validated Pod for nodeName.
// path identifies the manifest in the UID and in messages.
func Decode(path string, data []byte, nodeName string) (*v1.Pod, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("manifest is empty")
	}
	var pod v1.Pod
	// YAML is converted to JSON first (rejecting duplicate keys); strict
	// decoding then names every unknown field by its path, as the API server
	// does for a typo.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	strictErrs, err := kjson.UnmarshalStrict(js, &pod)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("decode: %s", strings.Join(msgs, "; "))
	}
	if pod.APIVersion != "v1" || pod.Kind != "Pod" {
		return nil, fmt.Errorf("want apiVersion v1 and kind Pod, got apiVersion %q kind %q", pod.APIVersion, pod.Kind)
	}
	if pod.Name == "" {
		return nil, fmt.Errorf("metadata.name is required")
	}
	if pod.Namespace == "" {
		pod.Namespace = v1.NamespaceDefault
	}
	// The kubelet derives the UID from the manifest and its source, so a
	// restart finds the same pod and an edit makes a new one.
	if pod.UID == "" {
		pod.UID = derivedUID(path, nodeName, data)
	}
	pod.Name = podsource.StaticName(pod.Name, nodeName)
	pod.Spec.NodeName = nodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[podsource.SourceAnnotation] = podsource.File
	pod.Annotations[podsource.HashAnnotation] = contentHash(path, nodeName, data)
	pod.Annotations[podsource.FileAnnotation] = path
	SetDefaults(&pod)
	if errs := Validate(&pod); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("invalid pod: %s", strings.Join(msgs, "; "))
	}
	return &pod, nil
}

func contentHash(path, nodeName string, data []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "source:file\x00path:%s\x00node:%s\x00", path, nodeName)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// derivedUID formats the content hash as a UUID so tools that expect one parse it.
func derivedUID(path, nodeName string, data []byte) types.UID {
	s := contentHash(path, nodeName, data)
	return types.UID(s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32])
}
