package format

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
)

// archive is a checkpoint archive holding the given dump files.
func archive(t *testing.T, files map[string]string) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"spec.dump", "config.dump", "status.dump"} {
		data, ok := files[name]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func TestDetailsImageName(t *testing.T) {
	id := "sha256:" + strings.Repeat("ab", 32)
	const spec = `{"annotations":{"io.kubernetes.cri.container-name":"app"}}`
	for _, tt := range []struct {
		name, config, status, want string
	}{
		{"the tag containerd recorded", `{"rootfsImageName":"example/app:1","rootfsImageRef":"` + id + `"}`,
			`{"image":{"image":"example/app:1"}}`, "example/app:1"},
		{"an image without tags: the name the container was created with", `{"rootfsImageName":"` + id + `","rootfsImageRef":"` + id + `"}`,
			`{"image":{"image":"` + id + `","user_specified_image":"example/app:1"}}`, "example/app:1"},
		{"an image without tags and no name given stays its ID", `{"rootfsImageName":"` + id + `"}`,
			`{"image":{"image":"` + id + `"}}`, id},
		{"a name for another image is not taken", `{"rootfsImageName":"` + id + `"}`,
			`{"image":{"image":"sha256:` + strings.Repeat("cd", 32) + `","user_specified_image":"example/other:1"}}`, id},
		{"a user-specified ID is not a name", `{"rootfsImageName":"` + id + `"}`,
			`{"image":{"image":"` + id + `","user_specified_image":"` + id + `"}}`, id},
		{"no status.dump (CRI-O)", `{"rootfsImageName":"` + id + `"}`, "", id},
		{"a name that merely starts like an ID", `{"rootfsImageName":"sha256:abc"}`,
			`{"image":{"image":"sha256:abc","user_specified_image":"example/app:1"}}`, "sha256:abc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"spec.dump": spec, "config.dump": tt.config}
			if tt.status != "" {
				files["status.dump"] = tt.status
			}
			d, err := ReadDetailsFrom(archive(t, files))
			if err != nil {
				t.Fatal(err)
			}
			if d.Image != tt.want {
				t.Errorf("image %q, want %q", d.Image, tt.want)
			}
		})
	}
}
