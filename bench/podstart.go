package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func podManifest(name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: knode.local/busybox:1.36
    command: ["sleep", "3600"]
`, name)
}

// waitRunning polls the runtime every 2 ms until every knode pod named
// (static pods carry the node's name, "-bench") runs.
func (e *env) waitRunning(ctx context.Context, names ...string) error {
	full := make([]string, len(names))
	for i, n := range names {
		full[i] = n + "-bench"
	}
	return e.waitPodsRunning(ctx, full...)
}

// waitPodsRunning polls the runtime every 2 ms until a container of every
// pod named (the io.kubernetes.pod.name label) runs. The bare CRI floor is
// observed by the same poll: its 500 calls a second load the runtime, and
// a floor measured without that load made knode look up to 100 ms slower
// than it is (docs/benchmarks.md, 2026-11-30).
func (e *env) waitPodsRunning(ctx context.Context, pods ...string) error {
	for {
		running, err := e.runningPods(ctx)
		if err != nil {
			return err
		}
		all := true
		for _, n := range pods {
			all = all && running[n]
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pods %v did not start: %w", pods, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (e *env) removeAll(ctx context.Context) error {
	files, _ := filepath.Glob(filepath.Join(e.manifests, "*.yaml"))
	for _, f := range files {
		_ = os.Remove(f)
	}
	for {
		sbs, err := e.rt.ListPodSandbox(ctx, nil)
		if err != nil {
			return err
		}
		if len(sbs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// bareCRI times RunPodSandbox + CreateContainer + StartContainer for the
// same pod shape, as the floor knode's latency is compared with.
func (e *env) bareCRI(ctx context.Context, i int) (time.Duration, error) {
	return e.bareRun(ctx, fmt.Sprintf("bare-%d-%d", time.Now().UnixNano(), i),
		&runtimeapi.ImageSpec{Image: "knode.local/busybox:1.36"}, []string{"sleep", "3600"})
}

// bareRun runs one container in a fresh sandbox through bare CRI calls and
// times sandbox + create + start until the same poll that watches knode's
// pods sees it running, then removes the sandbox again.
func (e *env) bareRun(ctx context.Context, uid string, image *runtimeapi.ImageSpec, command []string) (time.Duration, error) {
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: uid, Namespace: "default", Uid: uid},
		Hostname:     "bare",
		LogDirectory: filepath.Join(e.dir, "barelogs", uid),
		Labels:       map[string]string{"bench": "bare"},
		Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: benchCgroupRoot(e.dir) + "/kubepods/besteffort/pod" + uid},
	}
	_ = os.MkdirAll(sbCfg.LogDirectory, 0o755)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	seen := make(chan error, 1)
	start := time.Now()
	go func() { seen <- e.waitPodsRunning(pollCtx, uid) }()
	sb, err := e.rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		return 0, err
	}
	defer func() {
		_ = e.rt.StopPodSandbox(ctx, sb)
		_ = e.rt.RemovePodSandbox(ctx, sb)
	}()
	id, err := e.rt.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
		Labels:   map[string]string{"io.kubernetes.pod.name": uid},
		Image:    image,
		Command:  command,
		LogPath:  "main/0.log",
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}},
	}, sbCfg)
	if err != nil {
		return 0, fmt.Errorf("bare create: %w", err)
	}
	if err := e.rt.StartContainer(ctx, id); err != nil {
		return 0, fmt.Errorf("bare start: %w", err)
	}
	if err := <-seen; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func benchPodStart() error {
	e, err := runningEnv()
	if err != nil {
		return err
	}
	defer e.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const n = 20
	var bare, seq durations
	for i := 0; i < n; i++ {
		d, err := e.bareCRI(ctx, i)
		if err != nil {
			return err
		}
		bare = append(bare, d)
		name := fmt.Sprintf("seq%d", i)
		start := time.Now()
		if err := e.writeManifest(name+".yaml", podManifest(name)); err != nil {
			return err
		}
		if err := e.waitRunning(ctx, name); err != nil {
			return err
		}
		seq = append(seq, time.Since(start))
	}
	if err := e.removeAll(ctx); err != nil {
		return err
	}
	fmt.Printf("bare CRI (RunPodSandbox+CreateContainer+StartContainer until the poll sees it running), %d pods one at a time: p50 %s  p95 %s\n", n, ms(bare.pct(.5)), ms(bare.pct(.95)))
	fmt.Printf("knode manifest written -> Running, %d pods one at a time:       p50 %s  p95 %s\n", n, ms(seq.pct(.5)), ms(seq.pct(.95)))
	fmt.Printf("knode overhead at p50: %s\n", ms(seq.pct(.5)-bare.pct(.5)))

	for _, batch := range []int{9, 20} {
		var names []string
		start := time.Now()
		for i := 0; i < batch; i++ {
			name := fmt.Sprintf("b%d-%d", batch, i)
			names = append(names, name)
			if err := e.writeManifest(name+".yaml", podManifest(name)); err != nil {
				return err
			}
		}
		if err := e.waitRunning(ctx, names...); err != nil {
			return err
		}
		fmt.Printf("knode %d pods written at once -> all Running: %s\n", batch, ms(time.Since(start)))
		if err := e.removeAll(ctx); err != nil {
			return err
		}
	}
	return nil
}

func benchMemory() error {
	e, err := runningEnv()
	if err != nil {
		return err
	}
	defer e.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	settle := func() { time.Sleep(10 * time.Second) }
	settle()
	fmt.Printf("knode RSS idle: %d KiB\n", rssKiB(e.knode.Process.Pid))
	total := 0
	for _, want := range []int{1, 10, 50} {
		var names []string
		for ; total < want; total++ {
			name := fmt.Sprintf("m%d", total)
			names = append(names, name)
			if err := e.writeManifest(name+".yaml", podManifest(name)); err != nil {
				return err
			}
		}
		if err := e.waitRunning(ctx, names...); err != nil {
			return err
		}
		settle()
		fmt.Printf("knode RSS with %d pods: %d KiB (%s)\n", want, rssKiB(e.knode.Process.Pid), rssParts(e.knode.Process.Pid))
	}
	return e.removeAll(ctx)
}
