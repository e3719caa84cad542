package criu

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestDiagnosis(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unimplemented, "method CheckpointContainer not implemented"), "does not implement CheckpointContainer"},
		{errors.New("criu failed: Error (criu/vdso.c:...): vdso: Unexpected rt vDSO area bounds"), "older than 4.1"},
		{errors.New(`exec: "criu": executable file not found in $PATH`), "CRIU is not installed"},
		{errors.New("something else"), ""},
	} {
		got := Diagnosis(tt.err, "containerd://1.6.20")
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%v: %q, want %q", tt.err, got, tt.want)
		}
	}
	if !strings.Contains(Diagnosis(status.Error(codes.Unimplemented, "x"), "containerd://1.6.20"), "containerd://1.6.20") {
		t.Error("the Unimplemented hint must name the runtime and version")
	}
}

func TestVersions(t *testing.T) {
	for _, tt := range []struct {
		v, min string
		want   bool
	}{{"6.18.44-fc", "6.13", true}, {"6.12.9", "6.13", false}, {"4.1.1", "4.1", true}, {"3.17.1", "4.1", false}, {"4.1", "4.1", true}} {
		if got := VersionAtLeast(tt.v, tt.min); got != tt.want {
			t.Errorf("%s >= %s: %v", tt.v, tt.min, got)
		}
	}
	if !VDSOProblem("3.17.1", "6.18.0") || VDSOProblem("4.1.1", "6.18.0") || VDSOProblem("3.17.1", "6.1.0") {
		t.Error("VDSOProblem rule")
	}
}
