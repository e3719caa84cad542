// Package imagegc removes images that no container uses when the image
// filesystem fills up, as the kubelet's image garbage collector does:
// above imageGCHighThresholdPercent of the filesystem in use, the least
// recently used images go until usage is back at imageGCLowThresholdPercent.
// Images younger than imageMinimumGCAge and images the runtime pins (the
// sandbox image) stay.
package imagegc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Runtime lists every container on the runtime, whoever made it: an image
// in use by anyone is in use.
type Runtime interface {
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
}

// Images is the part of the CRI image service garbage collection uses.
type Images interface {
	ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error)
	RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)
}

// FsUsage reports a filesystem's capacity and available bytes.
type FsUsage func(mountpoint string) (capacity, available uint64, err error)

// Policy is the kubelet's image GC settings.
type Policy struct {
	HighThresholdPercent int // 100 disables garbage collection
	LowThresholdPercent  int
	MinAge               time.Duration
	// Period is how often usage is checked (the kubelet's: 5 minutes).
	Period time.Duration
}

// Validate applies the kubelet's rules.
func (p Policy) Validate() error {
	if p.HighThresholdPercent < 0 || p.HighThresholdPercent > 100 {
		return fmt.Errorf("image GC high threshold %d%% must be between 0 and 100", p.HighThresholdPercent)
	}
	if p.LowThresholdPercent < 0 || p.LowThresholdPercent > 100 {
		return fmt.Errorf("image GC low threshold %d%% must be between 0 and 100", p.LowThresholdPercent)
	}
	if p.LowThresholdPercent >= p.HighThresholdPercent {
		return fmt.Errorf("image GC low threshold %d%% must be below the high threshold %d%%", p.LowThresholdPercent, p.HighThresholdPercent)
	}
	if p.MinAge < 0 || p.Period <= 0 {
		return fmt.Errorf("image GC minimum age %s must not be negative and period %s must be positive", p.MinAge, p.Period)
	}
	return nil
}

// record is what the collector knows of an image between runs.
type record struct {
	firstSeen time.Time
	lastUsed  time.Time
	inUse     bool // at the last detection
	size      uint64
}

// Collector garbage-collects images.
type Collector struct {
	rt      Runtime
	images  Images
	fs      FsUsage
	policy  Policy
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	records map[string]*record // by image ID
}

// New returns a Collector; fs measures the image filesystem.
func New(rt Runtime, images Images, fs FsUsage, policy Policy, timeout time.Duration, log *slog.Logger) (*Collector, error) {
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	return &Collector{rt: rt, images: images, fs: fs, policy: policy, timeout: timeout, log: log, now: time.Now, records: map[string]*record{}}, nil
}

// Run checks usage every period until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	if c.policy.HighThresholdPercent == 100 {
		c.log.Info("image garbage collection is disabled (high threshold 100%)")
		return
	}
	// The first collection waits a period: at start the pods have not
	// started yet, and the images they are about to use look unused.
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	if _, err := c.detect(dctx); err != nil {
		c.log.Warn("image usage detection failed", "err", err)
	}
	cancel()
	t := time.NewTicker(c.policy.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if freed, err := c.Collect(ctx); err != nil {
			c.log.Warn("image garbage collection failed", "err", err)
		} else if freed > 0 {
			c.log.Info("image garbage collection freed space", "bytes", freed)
		}
	}
}

// Collect notes which images are in use, and when the image filesystem is
// above the high threshold removes unused ones, least recently used first,
// until it is at the low threshold. It returns the bytes freed.
func (c *Collector) Collect(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	images, err := c.detect(ctx)
	if err != nil {
		return 0, err
	}
	info, err := c.images.ImageFsInfo(ctx)
	if err != nil {
		return 0, fmt.Errorf("image filesystem info: %w", err)
	}
	fsList := info.GetImageFilesystems()
	if len(fsList) == 0 {
		return 0, errors.New("the runtime reports no image filesystem")
	}
	capacity, available, err := c.fs(fsList[0].GetFsId().GetMountpoint())
	if err != nil {
		return 0, fmt.Errorf("image filesystem usage: %w", err)
	}
	if capacity == 0 {
		return 0, nil
	}
	usage := 100 - int(available*100/capacity)
	if usage < c.policy.HighThresholdPercent {
		return 0, nil
	}
	target := capacity * uint64(100-c.policy.LowThresholdPercent) / 100
	if available >= target {
		return 0, nil
	}
	toFree := target - available
	c.log.Info("image filesystem over the high threshold; removing unused images", "usagePercent", usage,
		"highThresholdPercent", c.policy.HighThresholdPercent, "bytesToFree", toFree)
	return c.free(ctx, images, toFree)
}

// detect lists images and containers and updates when each image was last
// in use. It returns the images the runtime has now.
func (c *Collector) detect(ctx context.Context) ([]*runtimeapi.Image, error) {
	images, err := c.images.ListImages(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	containers, err := c.rt.ListContainers(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	used := map[string]bool{}
	for _, ct := range containers {
		used[ct.GetImageRef()] = true
		used[ct.GetImage().GetImage()] = true
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	present := map[string]bool{}
	for _, img := range images {
		present[img.Id] = true
		r := c.records[img.Id]
		if r == nil {
			r = &record{firstSeen: now}
			c.records[img.Id] = r
		}
		r.size = img.GetSize()
		r.inUse = inUse(img, used)
		if r.inUse {
			r.lastUsed = now
		}
	}
	for id := range c.records {
		if !present[id] {
			delete(c.records, id)
		}
	}
	return images, nil
}

func inUse(img *runtimeapi.Image, used map[string]bool) bool {
	if used[img.Id] {
		return true
	}
	for _, ref := range append(append([]string{}, img.RepoTags...), img.RepoDigests...) {
		if used[ref] {
			return true
		}
	}
	return false
}

// free removes unused, unpinned images older than the minimum age, least
// recently used first, until toFree bytes are gone.
func (c *Collector) free(ctx context.Context, images []*runtimeapi.Image, toFree uint64) (uint64, error) {
	now := c.now()
	type candidate struct {
		img *runtimeapi.Image
		r   record
	}
	var candidates []candidate
	c.mu.Lock()
	for _, img := range images {
		r := c.records[img.Id]
		if r == nil || r.inUse || img.Pinned || now.Sub(r.firstSeen) < c.policy.MinAge {
			continue
		}
		candidates = append(candidates, candidate{img, *r})
	}
	c.mu.Unlock()
	sort.Slice(candidates, func(i, j int) bool {
		a, b := candidates[i].r, candidates[j].r
		if !a.lastUsed.Equal(b.lastUsed) {
			return a.lastUsed.Before(b.lastUsed)
		}
		return a.firstSeen.Before(b.firstSeen)
	})
	var freed uint64
	var errs []error
	for _, cand := range candidates {
		if freed >= toFree {
			break
		}
		if err := c.images.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: cand.img.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove image %s: %w", cand.img.Id, err))
			continue
		}
		c.log.Info("removed unused image", "image", cand.img.Id, "tags", cand.img.RepoTags, "bytes", cand.r.size)
		freed += cand.r.size
		c.mu.Lock()
		delete(c.records, cand.img.Id)
		c.mu.Unlock()
	}
	if freed < toFree && len(errs) == 0 {
		return freed, fmt.Errorf("freed %d of the %d bytes asked: no more unused images", freed, toFree)
	}
	return freed, errors.Join(errs...)
}

// StatFS measures a filesystem with statfs(2).
func StatFS(mountpoint string) (capacity, available uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(mountpoint, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", mountpoint, err)
	}
	return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
}
