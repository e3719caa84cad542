package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/test/fakecri"
)

func benchCheckpoint() error {
	if err := checkpointOverhead(); err != nil {
		return err
	}
	if err := checkpointConcurrency(); err != nil {
		return err
	}
	return checkpointReal()
}

func (e *env) post(c *http.Client, path string) (time.Duration, string, error) {
	took, p, _, err := e.postOwn(c, path)
	return took, p, err
}

// postOwn also returns knode's own share as the server measured it.
func (e *env) postOwn(c *http.Client, path string) (time.Duration, string, time.Duration, error) {
	start := time.Now()
	resp, err := c.Post(e.url(path), "", nil)
	if err != nil {
		return 0, "", 0, err
	}
	ownMicros, _ := strconv.ParseInt(resp.Header.Get("X-Knode-Own-Microseconds"), 10, 64)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != 200 {
		return took, "", 0, fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, body)
	}
	var answer struct{ Items []string }
	_ = json.Unmarshal(body, &answer)
	return took, strings.Join(answer.Items, ","), time.Duration(ownMicros) * time.Microsecond, nil
}

// checkpointOverhead: knode's own share of a checkpoint (request → CRI call,
// CRI return → response, incl. rename, chmod, retention) for 1 MiB and
// 1 GiB archives, from the fake runtime's receive/finish times.
func checkpointOverhead() error {
	e, err := newEnv(true, "")
	if err != nil {
		return err
	}
	defer e.close()
	if err := e.writeManifest("web.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: app, image: fake/image:1}\n"); err != nil {
		return err
	}
	if err := e.startKnode("--checkpoint-max-per-container", "2"); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	c, err := e.httpClient(1)
	if err != nil {
		return err
	}
	for _, size := range []struct {
		label string
		bytes int
		n     int
	}{{"1 MiB", 1 << 20, 100}, {"1 GiB", 1 << 30, 10}} {
		e.fake.SetBehavior(fakecri.Behavior{Size: size.bytes})
		var own, server durations
		for i := 0; i < size.n; i++ {
			before := len(e.fake.Calls())
			took, _, serverOwn, err := e.postOwn(c, "/checkpoint/default/web-bench/app")
			if err != nil {
				return err
			}
			call := e.fake.Calls()[before]
			own = append(own, took-call.Finished.Sub(call.Received))
			server = append(server, serverOwn)
		}
		fmt.Printf("checkpoint, %s archives, %d requests: knode's share seen by the client (incl. HTTPS and gRPC round trips) p50 %s p99 %s; measured inside knode p50 %s p99 %s\n",
			size.label, size.n, ms(own.pct(.5)), ms(own.pct(.99)), ms(server.pct(.5)), ms(server.pct(.99)))
	}
	return nil
}

// checkpointConcurrency: 16 requests on 16 different containers at once,
// each taking the runtime 1 s, with --max-parallel-checkpoints 2 and 16.
func checkpointConcurrency() error {
	for _, parallel := range []int{2, 16} {
		e, err := newEnv(true, "")
		if err != nil {
			return err
		}
		var b strings.Builder
		b.WriteString("apiVersion: v1\nkind: Pod\nmetadata: {name: many}\nspec:\n  containers:\n")
		for i := 0; i < 16; i++ {
			fmt.Fprintf(&b, "  - {name: c%d, image: fake/image:1}\n", i)
		}
		if err := e.writeManifest("many.yaml", b.String()); err != nil {
			return err
		}
		if err := e.startKnode("--max-parallel-checkpoints", fmt.Sprint(parallel)); err != nil {
			e.close()
			return err
		}
		time.Sleep(3 * time.Second)
		e.fake.SetBehavior(fakecri.Behavior{Delay: time.Second})
		c, err := e.httpClient(16)
		if err != nil {
			e.close()
			return err
		}
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if _, _, err := e.post(c, fmt.Sprintf("/checkpoint/default/many-bench/c%d", i)); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}(i)
		}
		wg.Wait()
		total := time.Since(start)
		maxConcurrent := 0
		calls := e.fake.Calls()
		for _, a := range calls {
			n := 0
			for _, b := range calls {
				if !b.Received.After(a.Received) && b.Finished.After(a.Received) {
					n++
				}
			}
			maxConcurrent = max(maxConcurrent, n)
		}
		fmt.Printf("16 concurrent checkpoints (1 s each in the runtime), --max-parallel-checkpoints %d: all done in %s, at most %d in the runtime at once, %d errors (ideal: %s)\n",
			parallel, ms(total), maxConcurrent, len(errs), ms(time.Duration(16/parallel)*time.Second))
		e.close()
	}
	return nil
}

// checkpointReal: end to end on containerd 2.4.2 + CRIU 4.1 for containers
// holding 64, 256 and 1024 MiB, through knode and through bare CRI.
func checkpointReal() error {
	criuDir := filepath.Join(toolsDir(), "criu-trixie", "wrapper")
	e, err := newEnv(false, criuDir)
	if err != nil {
		return err
	}
	defer e.close()
	sizes := []int{64, 256, 1024}
	for _, mib := range sizes {
		name := fmt.Sprintf("hog%d", mib)
		if err := e.writeManifest(name+".yaml", fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {name: hog, image: knode.local/busybox:1.36, command: [memhog, \"%d\"]}\n", name, mib)); err != nil {
			return err
		}
	}
	if err := e.startKnode("--checkpoint-max-per-container", "1"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for _, mib := range sizes {
		if err := e.waitRunning(ctx, fmt.Sprintf("hog%d", mib)); err != nil {
			return err
		}
	}
	time.Sleep(5 * time.Second) // let memhog fill its memory
	c, err := e.httpClient(1)
	if err != nil {
		return err
	}
	for _, mib := range sizes {
		pod := fmt.Sprintf("hog%d-bench", mib)
		cs, err := e.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": pod},
			State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		if err != nil || len(cs) != 1 {
			return fmt.Errorf("find %s: %v", pod, err)
		}
		// Alternate bare CRI and knode, twice each, so neither gains from
		// running second (page cache, containerd's content store).
		var viaKnode, bare durations
		var size int64
		for round := 0; round < 2; round++ {
			bareLoc := filepath.Join(e.dir, fmt.Sprintf("bare-%d.tar", mib))
			start := time.Now()
			if err := e.rt.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: cs[0].Id, Location: bareLoc, Timeout: 600}); err != nil {
				return err
			}
			bare = append(bare, time.Since(start))
			_ = os.Remove(bareLoc)
			took, path, err := e.post(c, "/checkpoint/default/"+pod+"/hog?timeout=600")
			if err != nil {
				return err
			}
			viaKnode = append(viaKnode, took)
			if fi, err := os.Stat(path); err == nil {
				size = fi.Size()
			}
		}
		fmt.Printf("real checkpoint, %4d MiB held: bare CRI %s / %s, through knode %s / %s, archive %d MB\n",
			mib, ms(bare[0]), ms(bare[1]), ms(viaKnode[0]), ms(viaKnode[1]), size/1e6)
	}
	return nil
}
