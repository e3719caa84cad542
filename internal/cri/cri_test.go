package cri

import (
	"context"
	"errors"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
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

func TestHealthConditions(t *testing.T) {
	cond := func(typ string, ok bool) *runtimeapi.RuntimeCondition {
		return &runtimeapi.RuntimeCondition{Type: typ, Status: ok, Reason: "R", Message: "M"}
	}
	tests := []struct {
		name             string
		status           *runtimeapi.RuntimeStatus
		runtime, network string // expected errors, "" = nil
	}{
		{"ready", &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{cond(runtimeapi.RuntimeReady, true), cond(runtimeapi.NetworkReady, true)}}, "", ""},
		{"network not ready", &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{cond(runtimeapi.RuntimeReady, true), cond(runtimeapi.NetworkReady, false)}},
			"", "container runtime network not ready: NetworkReady=false reason:R message:M"},
		{"runtime not ready", &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{cond(runtimeapi.RuntimeReady, false), cond(runtimeapi.NetworkReady, true)}},
			"container runtime not ready: R: M", ""},
		{"no status", nil, "container runtime returned no status", ""},
	}
	errString := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := critest.NewFakeRuntimeService()
			rt.FakeStatus = tt.status
			h := newHealth(rt)
			_ = h.Check(context.Background())
			if got := errString(h.Err()); got != tt.runtime {
				t.Errorf("Err() = %q, want %q", got, tt.runtime)
			}
			if got := errString(h.NetworkErr()); got != tt.network {
				t.Errorf("NetworkErr() = %q, want %q", got, tt.network)
			}
		})
	}
}

// statusRuntime answers Status with runtime handlers, or err.
type statusRuntime struct {
	*critest.FakeRuntimeService
	handlers []*runtimeapi.RuntimeHandler
	err      error
}

func (r *statusRuntime) Status(context.Context, bool) (*runtimeapi.StatusResponse, error) {
	if r.err != nil {
		return nil, r.err
	}
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{}, RuntimeHandlers: r.handlers}, nil
}

// TestHealthKeepsRuntimeHandlers: the handlers' features are those of the
// last answered Status; an unanswered one keeps them.
func TestHealthKeepsRuntimeHandlers(t *testing.T) {
	rt := &statusRuntime{FakeRuntimeService: critest.NewFakeRuntimeService()}
	h := newHealth(rt)
	if got := h.RuntimeHandlers(); got != nil {
		t.Fatalf("before any Status: %v", got)
	}
	rt.handlers = []*runtimeapi.RuntimeHandler{{Name: ""}, {Name: "runc-userns", Features: &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: true}}}
	_ = h.Check(context.Background())
	got := h.RuntimeHandlers()
	if len(got) != 2 || got[1].GetName() != "runc-userns" || !got[1].GetFeatures().GetUserNamespaces() {
		t.Fatalf("handlers %v", got)
	}
	rt.err = errors.New("down")
	_ = h.Check(context.Background())
	if got := h.RuntimeHandlers(); len(got) != 2 {
		t.Fatalf("after a failed Status: %v", got)
	}
}
