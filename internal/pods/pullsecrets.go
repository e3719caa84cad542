package pods

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/keyring"
)

// imagePulls is what pulling with registry credentials needs.
type imagePulls struct {
	// secrets reads the pods' image pull secrets; nil without an API server.
	secrets PullSecrets
	// rootDir is where the node's config.json is looked for first.
	rootDir string
	// errs holds each image back-off's last pull error, for the
	// ImagePullBackOff message.
	errs sync.Map
	// records tell which pods may use an image knode pulled.
	records *pullRecords
}

// PullSecrets reads image pull secrets from the API server (cluster mode).
type PullSecrets interface {
	// PullSecret reads a Secret (its UID, type and data).
	PullSecret(ctx context.Context, namespace, name string) (keyring.Secret, error)
}

// pullCredentials are the credentials to try for image's repository, in
// the kubelet's order: the pod's image pull secrets (which the API
// server's ServiceAccount admission filled from the service account when
// the pod named none), then the node's own config.json; within each, the
// most specific registry key first. None means an anonymous pull.
func (s *podSync) pullCredentials(ctx context.Context, repo string) []keyring.Entry {
	d := s.w.d
	var fromSecrets keyring.Keyring
	var failed []string
	for _, ref := range s.pod.Spec.ImagePullSecrets {
		if ref.Name == "" {
			continue
		}
		if d.pulls.secrets == nil {
			failed = append(failed, ref.Name)
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, d.RequestTimeout)
		secret, err := d.pulls.secrets.PullSecret(sctx, s.pod.Namespace, ref.Name)
		cancel()
		if err == nil {
			var cfg keyring.Config
			if cfg, err = keyring.FromSecret(secret); err == nil {
				fromSecrets.Add(cfg)
				continue
			}
		}
		d.log.Info("Unable to retrieve pull secret, the image pull may not succeed.", "pod", podRef(s.pod, nil), "secret", s.pod.Namespace+"/"+ref.Name, "err", err)
		failed = append(failed, ref.Name)
	}
	if len(failed) > 0 {
		s.warning("FailedToRetrieveImagePullSecret", fmt.Sprintf("Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(failed, ", ")))
	}
	var node keyring.Keyring
	cfg, path, err := keyring.NodeConfig(keyring.NodeSearchPaths(d.pulls.rootDir, os.Getenv("HOME")))
	if err != nil {
		d.log.Warn("node registry credentials unreadable", "err", err)
	}
	if cfg != nil {
		d.log.Debug("node registry credentials", "file", path)
		node.Add(cfg)
	}
	return append(fromSecrets.Lookup(repo), node.Lookup(repo)...)
}

// pullWithCredentials pulls with each credential in turn until one works,
// as the kubelet does; without credentials it pulls anonymously. It
// returns the image's ID and the credential that worked (nil: none was
// needed); the error of a failed pull lists every attempt's.
func pullWithCredentials(ctx context.Context, images Images, spec *runtimeapi.ImageSpec, creds []keyring.Entry, sb *runtimeapi.PodSandboxConfig) (string, *keyring.Entry, error) {
	if len(creds) == 0 {
		ref, err := images.PullImage(ctx, spec, nil, sb)
		return ref, nil, err
	}
	var errs []error
	for i, auth := range keyring.AuthConfigs(creds) {
		ref, err := images.PullImage(ctx, spec, auth, sb)
		if err == nil {
			return ref, &creds[i], nil
		}
		errs = append(errs, err)
	}
	return "", nil, utilerrors.NewAggregate(errs)
}
