package devicemanager

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// registrationDialTimeout is the kubelet's: a plugin must answer within 10 s.
const registrationDialTimeout = 10 * time.Second

type registration struct {
	pluginapi.UnimplementedRegistrationServer
	m *Manager
}

// Register is synchronous, as in kubelet >= 1.25: knode dials the plugin and
// asks its options before answering, so a plugin that cannot be reached
// never appears as a resource.
func (r *registration) Register(ctx context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	m := r.m
	if req.Version != pluginapi.Version {
		err := fmt.Errorf("device plugin API version %q is not supported: knode supports %s", req.Version, pluginapi.Version)
		m.registrationFailed(req.ResourceName, err)
		return nil, err
	}
	if err := ValidateResourceName(req.ResourceName); err != nil {
		m.registrationFailed(req.ResourceName, err)
		return nil, err
	}
	socket, err := m.pluginSocket(req.Endpoint)
	if err != nil {
		m.registrationFailed(req.ResourceName, err)
		return nil, err
	}
	ep, err := dial(ctx, req.ResourceName, socket, registrationDialTimeout)
	if err != nil {
		err = fmt.Errorf("registration of %s failed: %w", req.ResourceName, err)
		m.registrationFailed(req.ResourceName, err)
		return nil, err
	}
	m.register(ep)
	return &pluginapi.Empty{}, nil
}

// pluginSocket resolves a plugin's endpoint inside the device plugins
// directory; names that would leave it are refused.
func (m *Manager) pluginSocket(endpoint string) (string, error) {
	if endpoint == "" || strings.ContainsAny(endpoint, "/\\\x00") || endpoint == "." || endpoint == ".." || endpoint == "kubelet.sock" {
		return "", fmt.Errorf("endpoint %q must be a socket file name inside %s", endpoint, m.opts.Dir)
	}
	return filepath.Join(m.opts.Dir, endpoint), nil
}
