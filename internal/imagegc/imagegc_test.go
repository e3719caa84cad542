package imagegc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type fakeCRI struct {
	images     []*runtimeapi.Image
	containers []*runtimeapi.Container
	removed    []string
	removeErr  map[string]error
}

func (f *fakeCRI) ListContainers(context.Context, *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	return f.containers, nil
}

func (f *fakeCRI) ListImages(context.Context, *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	return f.images, nil
}

func (f *fakeCRI) RemoveImage(_ context.Context, spec *runtimeapi.ImageSpec) error {
	if err := f.removeErr[spec.Image]; err != nil {
		return err
	}
	f.removed = append(f.removed, spec.Image)
	f.images = slices.DeleteFunc(f.images, func(i *runtimeapi.Image) bool { return i.Id == spec.Image })
	return nil
}

func (f *fakeCRI) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: "/images"}}}}, nil
}

func TestCollect(t *testing.T) {
	const mib = 1 << 20
	cri := &fakeCRI{
		images: []*runtimeapi.Image{
			{Id: "sha256:pause", RepoTags: []string{"registry.k8s.io/pause:3.10"}, Size: 1 * mib, Pinned: true},
			{Id: "sha256:app", RepoTags: []string{"example/app:1"}, Size: 50 * mib},
			{Id: "sha256:old", RepoTags: []string{"example/old:1"}, Size: 30 * mib},
			{Id: "sha256:older", RepoTags: []string{"example/older:1"}, Size: 20 * mib},
			{Id: "sha256:new", RepoTags: []string{"example/new:1"}, Size: 40 * mib},
		},
		// Created as the kubelet creates containers: from the image ID,
		// the spec's name kept as the user's.
		containers: []*runtimeapi.Container{{Id: "c1", ImageRef: "sha256:app", Image: &runtimeapi.ImageSpec{Image: "sha256:app", UserSpecifiedImage: "example/app:1"}}},
	}
	available := uint64(500 * mib) // of 1000 MiB: 50% used

	fs := func(string) (uint64, uint64, error) { return 1000 * mib, available, nil }
	c, err := New(cri, cri, fs, Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: 2 * time.Minute, Period: time.Minute},
		time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	c.now = func() time.Time { return now }

	// While usage is low the collector only notes which images are used.
	if freed, err := c.Collect(context.Background()); err != nil || freed != 0 {
		t.Fatalf("below the threshold: %d %v", freed, err)
	}
	// "old" and "older" were in use once, "older" longer ago.
	cri.containers = append(cri.containers, &runtimeapi.Container{Id: "c2", ImageRef: "sha256:older"})
	now = now.Add(time.Minute)
	c.Collect(context.Background())
	cri.containers[1] = &runtimeapi.Container{Id: "c3", Image: &runtimeapi.ImageSpec{Image: "example/old:1"}}
	now = now.Add(time.Minute)
	c.Collect(context.Background())
	cri.containers = cri.containers[:1]
	cri.images = append(cri.images, &runtimeapi.Image{Id: "sha256:fresh", Size: 90 * mib}) // too young
	now = now.Add(2 * time.Minute)
	available = 50 * mib

	// 95% used, to 80%: 150 MiB to free. LRU: "new" (never used), "older", "old".
	freed, err := c.Collect(context.Background())
	if err == nil {
		t.Fatal("freeing less than asked is not reported")
	}
	if want := []string{"sha256:new", "sha256:older", "sha256:old"}; !slices.Equal(cri.removed, want) || freed != 90*mib {
		t.Fatalf("removed %v (%d MiB), want %v: the in-use, pinned and young images stay", cri.removed, freed/mib, want)
	}

	// Below the high threshold nothing happens.
	cri.removed = nil
	available = 200 * mib
	if freed, err := c.Collect(context.Background()); err != nil || freed != 0 || len(cri.removed) != 0 {
		t.Fatalf("below the threshold: %v %d %v", cri.removed, freed, err)
	}
}

func TestRemoveFailureIsReported(t *testing.T) {
	cri := &fakeCRI{images: []*runtimeapi.Image{{Id: "a", Size: 10}, {Id: "b", Size: 10}},
		removeErr: map[string]error{"a": errors.New("image is in use by a container")}}
	fs := func(string) (uint64, uint64, error) { return 100, 5, nil }
	c, _ := New(cri, cri, fs, Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, Period: time.Minute}, time.Second,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	_, err := c.Collect(context.Background())
	if err == nil || !slices.Equal(cri.removed, []string{"b"}) {
		t.Fatalf("removed %v, err %v: want b removed and a's failure reported", cri.removed, err)
	}
}

func TestPolicy(t *testing.T) {
	for _, p := range []Policy{
		{HighThresholdPercent: 80, LowThresholdPercent: 85, Period: time.Minute},
		{HighThresholdPercent: 101, LowThresholdPercent: 80, Period: time.Minute},
		{HighThresholdPercent: 85, LowThresholdPercent: 80},
	} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}
