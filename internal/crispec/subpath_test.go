package crispec

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSubPathExprExpansion(t *testing.T) {
	envs := []*runtimeapi.KeyValue{
		{Key: "POD_NAME", Value: []byte("web-1")},
		{Key: "NS", Value: []byte("prod")},
		{Key: "EMPTY", Value: nil},
		{Key: "UP", Value: []byte("..")},
		{Key: "ABS", Value: []byte("/tmp")},
	}
	for _, tt := range []struct {
		vm      v1.VolumeMount
		want    string
		wantErr string
	}{
		{vm: v1.VolumeMount{Name: "v", SubPathExpr: "$(POD_NAME)"}, want: "web-1"},
		{vm: v1.VolumeMount{Name: "v", SubPathExpr: "logs/$(NS)/$(POD_NAME)"}, want: "logs/prod/web-1"},
		{vm: v1.VolumeMount{Name: "v", SubPathExpr: "$$(POD_NAME)"}, want: "$(POD_NAME)"},
		{vm: v1.VolumeMount{Name: "v", SubPathExpr: "a$b"}, want: "a$b"},
		{vm: v1.VolumeMount{Name: "v", SubPath: "plain/$(POD_NAME)"}, want: "plain/$(POD_NAME)"},
		{vm: v1.VolumeMount{Name: "v"}, want: ""},
		{vm: v1.VolumeMount{Name: "v", SubPathExpr: "$(NOPE)/$(EMPTY)/$(NOPE)"}, wantErr: "missing value for EMPTY, NOPE"},
		{vm: v1.VolumeMount{Name: "v", SubPathExpr: "$(UP)"}, wantErr: "unable to provision SubPath `..`: must not contain '..'"},
		{vm: v1.VolumeMount{Name: "v", SubPathExpr: "x/$(UP)/y"}, wantErr: "unable to provision SubPath `x/../y`: must not contain '..'"},
		{vm: v1.VolumeMount{Name: "v", SubPathExpr: "$(ABS)"}, wantErr: "error SubPath `/tmp` must not be an absolute path"},
		{vm: v1.VolumeMount{Name: "v", SubPath: "/etc"}, wantErr: "error SubPath `/etc` must not be an absolute path"},
		{vm: v1.VolumeMount{Name: "v", SubPath: "a/../../b"}, wantErr: "unable to provision SubPath `a/../../b`: must not contain '..'"},
		{vm: v1.VolumeMount{Name: "v", SubPath: "a", SubPathExpr: "b"}, wantErr: `volumeMount "v": subPathExpr and subPath are mutually exclusive`},
	} {
		got, err := SubPath(&tt.vm, envs)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%+v: got %q, %v; want error %q", tt.vm, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%+v: got %q, %v; want %q", tt.vm, got, err, tt.want)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	tests := map[string]string{
		"plain":       "plain",
		"$(A)":        "1",
		"x$(A)y$(B)z": "x1ytwoz",
		"$(MISSING)":  "$(MISSING)",
		"$$(A)":       "$(A)",
		"$$":          "$",
		"cost $5":     "cost $5",
		"open $(A":    "open $(A",
		"trailing $":  "trailing $",
	}
	for in, want := range tests {
		if got := Expand(in, lookup); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}
