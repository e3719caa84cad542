package format

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"knode.io/knode/internal/apierr"
)

// Member is one file in an archive.
type Member struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Details is what `checkpointctl show` tells about an archive, read from
// the archive itself (config.dump and spec.dump, as CRI-O and containerd write them).
type Details struct {
	// Runtime is "containerd", "cri-o" or "unknown", from the spec's annotations.
	Runtime          string    `json:"runtime"`
	ContainerID      string    `json:"containerID,omitempty"`
	ContainerName    string    `json:"containerName,omitempty"`
	PodName          string    `json:"podName,omitempty"`
	PodNamespace     string    `json:"podNamespace,omitempty"`
	Image            string    `json:"image,omitempty"`
	ImageRef         string    `json:"imageRef,omitempty"`
	RuntimeHandler   string    `json:"runtimeHandler,omitempty"`
	ContainerCreated time.Time `json:"containerCreated,omitzero"`
	CheckpointedAt   time.Time `json:"checkpointedAt,omitzero"`
	Command          []string  `json:"command,omitempty"`
	Members          []Member  `json:"members"`
}

// configDump is the part of config.dump both runtimes write.
type configDump struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	RootfsImage      string    `json:"rootfsImage"`
	RootfsImageRef   string    `json:"rootfsImageRef"`
	RootfsImageName  string    `json:"rootfsImageName"`
	Runtime          string    `json:"runtime"`
	CreatedTime      time.Time `json:"createdTime"`
	CheckpointedTime time.Time `json:"checkpointedTime"`
}

// statusDump is the part of status.dump (the CRI ContainerStatus at the
// checkpoint, as containerd writes it) that names the image.
type statusDump struct {
	Image struct {
		Image              string `json:"image"`
		UserSpecifiedImage string `json:"user_specified_image"`
	} `json:"image"`
}

// specDump is the part of the OCI runtime spec (spec.dump) that names the container.
type specDump struct {
	Annotations map[string]string `json:"annotations"`
	Process     *struct {
		Args []string `json:"args"`
	} `json:"process"`
}

// ErrNotArchive means the file is not a checkpoint archive.
var ErrNotArchive = apierr.New(apierr.Unprocessable, "not a checkpoint archive: it has no spec.dump and config.dump")

// maxDumpSize bounds how much of spec.dump/config.dump is read.
const maxDumpSize = 4 << 20

// ReadDetails reads an archive's members and metadata. It never extracts
// anything to disk.
func ReadDetails(path string) (*Details, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	return ReadDetailsFrom(f)
}

// ReadDetailsFrom reads the archive f, already opened (safely) by the caller.
func ReadDetailsFrom(f io.Reader) (*Details, error) {
	d := &Details{Runtime: "unknown", Members: []Member{}}
	var cfg configDump
	var spec specDump
	var status statusDump
	var haveCfg, haveSpec bool
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		d.Members = append(d.Members, Member{Name: hdr.Name, Size: hdr.Size})
		switch hdr.Name {
		case "config.dump":
			haveCfg = decodeJSON(tr, &cfg) == nil
		case "spec.dump":
			haveSpec = decodeJSON(tr, &spec) == nil
		case "status.dump":
			_ = decodeJSON(tr, &status) // optional: CRI-O writes none
		}
	}
	if !haveCfg || !haveSpec {
		return nil, ErrNotArchive
	}
	d.ContainerID = cfg.ID
	d.Image = FirstNonEmpty(cfg.RootfsImageName, cfg.RootfsImage)
	if isImageID(d.Image) && status.Image.Image == d.Image && status.Image.UserSpecifiedImage != "" && !isImageID(status.Image.UserSpecifiedImage) {
		// Containers are created from their image's ID (as the kubelet
		// creates them); containerd names the image by a tag while it has
		// one, else by that ID, which another machine cannot pull. The
		// name the pod gave is then the one the container was created with.
		d.Image = status.Image.UserSpecifiedImage
	}
	d.ImageRef = cfg.RootfsImageRef
	d.RuntimeHandler = cfg.Runtime
	d.ContainerCreated = cfg.CreatedTime
	d.CheckpointedAt = cfg.CheckpointedTime
	if spec.Process != nil {
		d.Command = spec.Process.Args
	}
	a := spec.Annotations
	switch {
	case a["io.kubernetes.cri.container-name"] != "":
		d.Runtime = "containerd"
		d.ContainerName = a["io.kubernetes.cri.container-name"]
		d.PodName = a["io.kubernetes.cri.sandbox-name"]
		d.PodNamespace = a["io.kubernetes.cri.sandbox-namespace"]
	case a["io.kubernetes.cri-o.ContainerID"] != "" || a["io.kubernetes.cri-o.Name"] != "":
		d.Runtime = "cri-o"
		d.ContainerName = a["io.kubernetes.container.name"]
		d.PodName = a["io.kubernetes.pod.name"]
		d.PodNamespace = a["io.kubernetes.pod.namespace"]
	}
	return d, nil
}

func decodeJSON(r io.Reader, v any) error {
	return json.NewDecoder(io.LimitReader(r, maxDumpSize)).Decode(v)
}

// isImageID tells whether ref is an image ID (sha256:<64 hex>) rather
// than a name.
func isImageID(ref string) bool {
	hex, ok := strings.CutPrefix(ref, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	return strings.Trim(hex, "0123456789abcdef") == ""
}

// FirstNonEmpty is the first of ss that is not empty.
func FirstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
