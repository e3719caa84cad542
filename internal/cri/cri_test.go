package cri

import (
	"errors"
	"testing"
)

func TestCheckEndpoint(t *testing.T) {
	tests := []struct {
		endpoint  string
		dockerErr bool
		ok        bool
	}{
		{endpoint: "unix:///run/containerd/containerd.sock", ok: true},
		{endpoint: "/run/crio/crio.sock", ok: true},
		{endpoint: "unix:///var/run/dockershim.sock", dockerErr: true},
		{endpoint: "unix:///var/run/docker.sock", dockerErr: true},
		{endpoint: "/var/run/docker.sock/", dockerErr: true},
		{endpoint: "unix:///run/cri-dockerd.sock", ok: true},
		{endpoint: "tcp://127.0.0.1:1234"},
		{endpoint: ""},
	}
	for _, tt := range tests {
		err := CheckEndpoint(tt.endpoint)
		if tt.ok != (err == nil) {
			t.Errorf("%q: err = %v, want ok=%v", tt.endpoint, err, tt.ok)
		}
		if errors.Is(err, ErrDockershim) != tt.dockerErr {
			t.Errorf("%q: dockershim error = %v, want %v", tt.endpoint, errors.Is(err, ErrDockershim), tt.dockerErr)
		}
	}
}
