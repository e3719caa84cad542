package pods

import (
	"context"
	"errors"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
)

// envObjects answers from maps, with the API server's not-found error
// (plural resource) for anything else, and counts reads.
type envObjects struct {
	configMaps map[string]map[string]string
	secrets    map[string]map[string][]byte
	reads      int
}

func (o *envObjects) ConfigMap(context.Context, string, string) (map[string][]byte, error) {
	return nil, errors.New("env sources must not read binaryData")
}

func (o *envObjects) ConfigMapData(_ context.Context, _, name string) (map[string]string, error) {
	o.reads++
	if d, ok := o.configMaps[name]; ok {
		return d, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (o *envObjects) Secret(_ context.Context, _, name string) (map[string][]byte, error) {
	o.reads++
	if d, ok := o.secrets[name]; ok {
		return d, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func (o *envObjects) ServiceAccountToken(context.Context, *v1.Pod, string, int64) (string, error) {
	return "", nil
}

func TestEnvSources(t *testing.T) {
	yes := func() *bool { b := true; return &b }
	cmRef := func(name, prefix string, optional *bool) v1.EnvFromSource {
		return v1.EnvFromSource{Prefix: prefix, ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: name}, Optional: optional}}
	}
	secRef := func(name, prefix string, optional *bool) v1.EnvFromSource {
		return v1.EnvFromSource{Prefix: prefix, SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: name}, Optional: optional}}
	}
	cmKey := func(env, name, key string, optional *bool) v1.EnvVar {
		return v1.EnvVar{Name: env, ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: name}, Key: key, Optional: optional}}}
	}
	secKey := func(env, name, key string, optional *bool) v1.EnvVar {
		return v1.EnvVar{Name: env, ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: name}, Key: key, Optional: optional}}}
	}
	objects := func() *envObjects {
		return &envObjects{
			configMaps: map[string]map[string]string{"cfg": {"MODE": "fast", "1bad": "x", "a.b": "y"}},
			secrets:    map[string]map[string][]byte{"creds": {"USER": []byte("u"), "PASS": []byte("p")}},
		}
	}
	for _, tt := range []struct {
		name      string
		envFrom   []v1.EnvFromSource
		env       []v1.EnvVar
		noObjects bool
		want      map[string]string
		wantErr   string
		wantReads int
	}{
		{name: "configMap and secret with prefixes; keys as they are, each object read once",
			envFrom:   []v1.EnvFromSource{cmRef("cfg", "CFG_", nil), secRef("creds", "", nil), cmRef("cfg", "", nil)},
			env:       []v1.EnvVar{cmKey("M", "cfg", "MODE", nil), secKey("U", "creds", "USER", nil)},
			want:      map[string]string{"CFG_MODE": "fast", "CFG_1bad": "x", "CFG_a.b": "y", "USER": "u", "PASS": "p", "MODE": "fast", "1bad": "x", "a.b": "y", "M": "fast", "U": "u"},
			wantReads: 2},
		{name: "env overrides envFrom and expands its variables",
			envFrom: []v1.EnvFromSource{secRef("creds", "", nil)},
			env:     []v1.EnvVar{{Name: "USER", Value: "admin"}, {Name: "DSN", Value: "$(USER):$(PASS)@db"}},
			want:    map[string]string{"USER": "admin", "PASS": "p", "DSN": "admin:p@db"}, wantReads: 1},
		{name: "optional missing objects and keys are left out",
			envFrom: []v1.EnvFromSource{cmRef("nope", "", yes()), secRef("nope", "", yes())},
			env:     []v1.EnvVar{cmKey("A", "nope", "k", yes()), cmKey("B", "cfg", "missing", yes()), secKey("C", "creds", "missing", yes()), secKey("D", "nope", "k", yes()), {Name: "E", Value: "$(A)"}},
			want:    map[string]string{"E": "$(A)"}, wantReads: 6}, // not found is not remembered, as in the kubelet
		{name: "a missing required envFrom configMap", envFrom: []v1.EnvFromSource{cmRef("nope", "", nil)}, wantErr: `configmap "nope" not found`},
		{name: "a missing required envFrom secret", envFrom: []v1.EnvFromSource{secRef("nope", "", nil)}, wantErr: `secret "nope" not found`},
		{name: "a missing required configMap of a key ref", env: []v1.EnvVar{cmKey("A", "nope", "k", nil)}, wantErr: `configmap "nope" not found`},
		{name: "a missing required configMap key", env: []v1.EnvVar{cmKey("A", "cfg", "k", nil)}, wantErr: "couldn't find key k in ConfigMap ns/cfg"},
		{name: "a missing required secret key", env: []v1.EnvVar{secKey("A", "creds", "k", nil)}, wantErr: "couldn't find key k in Secret ns/creds"},
		{name: "optional is about not found, not about reaching the API server", noObjects: true,
			envFrom: []v1.EnvFromSource{cmRef("cfg", "", yes())}, wantErr: "couldn't get configMap ns/cfg, no kubeClient defined"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := objects()
			d := &envAPI{}
			if !tt.noObjects {
				d.objects = o
			}
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
				Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", EnvFrom: tt.envFrom, Env: tt.env}}}}
			c := &pod.Spec.Containers[0]
			src, err := d.envSources(pod, c)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			envs, err := crispec.Env(pod, c, "", crispec.Node{}, src)
			if err != nil {
				t.Fatal(err)
			}
			if got := envMap(envs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("env %v, want %v", got, tt.want)
			}
			if o.reads != tt.wantReads {
				t.Errorf("%d API reads, want %d", o.reads, tt.wantReads)
			}
		})
	}
}

func envMap(envs []*runtimeapi.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range envs {
		m[kv.Key] = string(kv.Value)
	}
	return m
}
