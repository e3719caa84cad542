package main

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// benchAPI loads /healthz and /pods with 32 keep-alive client-cert TLS
// clients for 10 s each; knode runs 50 pods on the fake runtime (the
// answers come from knode's memory either way).
func benchAPI() error {
	e, err := newEnv(true, "")
	if err != nil {
		return err
	}
	defer e.close()
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("p%d", i)
		if err := e.writeManifest(name+".yaml", fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  containers:\n  - {name: main, image: fake/image:1}\n", name)); err != nil {
			return err
		}
	}
	if err := e.startKnode(); err != nil {
		return err
	}
	time.Sleep(5 * time.Second)
	const clients = 32
	client, err := e.httpClient(clients)
	if err != nil {
		return err
	}
	for _, path := range []string{"/healthz", "/pods"} {
		var mu sync.Mutex
		var lat durations
		var failures int
		deadline := time.Now().Add(10 * time.Second)
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var local durations
				bad := 0
				for time.Now().Before(deadline) {
					start := time.Now()
					resp, err := client.Get(e.url(path))
					if err != nil {
						bad++
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						bad++
					}
					local = append(local, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, local...)
				failures += bad
				mu.Unlock()
			}()
		}
		wg.Wait()
		fmt.Printf("%-8s %d clients: %.0f req/s  p50 %s  p99 %s  failures %d\n", path, clients,
			float64(len(lat))/10, ms(lat.pct(.5)), ms(lat.pct(.99)), failures)
	}
	return nil
}
