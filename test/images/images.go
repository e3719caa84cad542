// Package images builds the small container images knode's tests and
// examples run, as image archives that `ctr images import` accepts, from
// binaries on this machine: no registry is reachable here.
package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Names of the images the tests and examples use.
const (
	Pause   = "registry.k8s.io/pause:3.10"
	Busybox = "knode.local/busybox:1.36"
)

// busyboxApplets get a symlink each in /bin.
var busyboxApplets = []string{"sh", "ash", "cat", "echo", "sleep", "ls", "date", "env", "head", "tail",
	"true", "false", "touch", "mkdir", "rm", "wc", "grep", "sed", "dd", "sha256sum", "md5sum", "kill", "ps", "hostname", "id", "test", "printf", "seq", "stat", "uptime", "tee", "yes", "watch", "nc", "wget", "ip", "httpd"}

type file struct {
	name string
	mode int64
	data []byte
	link string
	dir  bool
}

// WritePause writes the pause image built from a static pause binary.
func WritePause(out, pauseBinary string) error {
	bin, err := os.ReadFile(pauseBinary)
	if err != nil {
		return fmt.Errorf("read pause binary: %w", err)
	}
	return write(out, Pause, []file{{name: "pause", mode: 0o755, data: bin}}, v1.Config{Entrypoint: []string{"/pause"}})
}

// Unused names an image no test runs: image garbage collection may remove it.
const Unused = "knode.local/unused:1"

// WriteUnused writes a small image holding one data file.
func WriteUnused(out string) error {
	return write(out, Unused, []file{{name: "data", mode: 0o644, data: []byte("nothing runs from this image\n")}}, v1.Config{})
}

// WriteBusybox writes a busybox image from a static busybox binary; extra
// static binaries (name → host path) are added to /bin.
func WriteBusybox(out, busyboxBinary string, extra map[string]string) error {
	files, err := busyboxFiles(busyboxBinary, extra)
	if err != nil {
		return err
	}
	return write(out, Busybox, files, busyboxConfig(""))
}

// busyboxConfig is the busybox image's config, running as user ("" root).
func busyboxConfig(user string) v1.Config {
	return v1.Config{
		Cmd:  []string{"sh"},
		Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		User: user,
	}
}

// busyboxFiles is the busybox image's root filesystem.
func busyboxFiles(busyboxBinary string, extra map[string]string) ([]file, error) {
	bin, err := os.ReadFile(busyboxBinary)
	if err != nil {
		return nil, fmt.Errorf("read busybox binary: %w", err)
	}
	files := []file{
		{name: "bin", dir: true}, {name: "tmp", dir: true, mode: 0o1777}, {name: "etc", dir: true},
		{name: "bin/busybox", mode: 0o755, data: bin},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for _, applet := range busyboxApplets {
		files = append(files, file{name: "bin/" + applet, link: "busybox"})
	}
	for name, path := range extra {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		files = append(files, file{name: "bin/" + name, mode: 0o755, data: data})
	}
	return files, nil
}

func write(out, ref string, files []file, cfg v1.Config) error {
	return writeTags(out, []string{ref}, files, cfg)
}

// writeTags writes one image under several names (one archive, one image).
func writeTags(out string, refs []string, files []file, cfg v1.Config) error {
	layerTar, err := tarFiles(files)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Config = "amd64", "linux", cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	tags := map[name.Reference]v1.Image{}
	for _, ref := range refs {
		tag, err := name.NewTag(ref)
		if err != nil {
			return fmt.Errorf("image name: %w", err)
		}
		tags[tag] = img
	}
	// Written aside and renamed into place: a run importing the archive
	// while another run (of the conformance harness, say) writes it again
	// reads the old file or the new one, never half of one.
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := tarball.MultiRefWriteToFile(tmp.Name(), tags); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func tarFiles(files []file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.dir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, f.name+"/"
			if hdr.Mode == 0 {
				hdr.Mode = 0o755
			}
		case f.link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, f.link, 0o777
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}
