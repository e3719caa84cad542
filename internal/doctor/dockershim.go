package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"knode.io/knode/internal/pods"
)

func checkDockershim(ctx context.Context, env Env, r *Report) {
	const area = "dockershim"
	if strings.HasSuffix(env.Endpoint, "dockershim.sock") || strings.HasSuffix(env.Endpoint, "docker.sock") {
		r.problem(area, "endpoint", fmt.Sprintf("the configured endpoint %s is Docker's", env.Endpoint),
			"point --container-runtime-endpoint at containerd or CRI-O, or at cri-dockerd (unix:///run/cri-dockerd.sock) to keep Docker Engine")
	} else {
		r.ok(area, "endpoint", "the configured runtime is not dockershim")
	}
	if env.ManifestDir != "" {
		entries, _ := os.ReadDir(env.ManifestDir)
		dependent := 0
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(env.ManifestDir, e.Name()))
			if err != nil {
				continue
			}
			var pod v1.Pod
			if yaml.Unmarshal(data, &pod) != nil {
				continue
			}
			if p, ok := pods.MountsDockerSocket(&pod); ok {
				dependent++
				r.warn(area, "manifest", fmt.Sprintf("%s mounts %s by hostPath, which exposes the Docker socket", e.Name(), p),
					"use the CRI socket (or crictl) instead of Docker's, or mount a narrower path")
			}
		}
		if dependent == 0 {
			r.ok(area, "manifests", "no static pod mounts the Docker socket or a directory above it")
		}
	}
	if env.BoundPods != nil {
		checkBoundPods(ctx, env, r)
	}
	if pid := findProcess("dockerd"); pid > 0 {
		r.warn(area, "dockerd", fmt.Sprintf("dockerd is running (pid %d)", pid), "nothing on this node should need it once its pods run on the CRI runtime")
	} else {
		r.ok(area, "dockerd", "no dockerd is running")
	}
	checkRegistryMirrors(env, r)
	if env.ContainerLogsDir != "" {
		if entries, err := os.ReadDir(env.ContainerLogsDir); err == nil && len(entries) > 0 {
			r.ok(area, "log symlinks", fmt.Sprintf("%s has %d entries for log agents", env.ContainerLogsDir, len(entries)))
		} else {
			r.warn(area, "log symlinks", fmt.Sprintf("%s has no container log symlinks", env.ContainerLogsDir),
				"knode links each container it starts there; if pods run, check --container-log-symlink-dir (log agents read the pod log dir "+env.PodLogsDir+" through these links)")
		}
	}
}

// checkBoundPods flags the pods the scheduler bound to this node that mount
// the Docker socket: they break, or keep a Docker dependency, on a CRI node.
func checkBoundPods(ctx context.Context, env Env, r *Report) {
	const area = "dockershim"
	bound, err := env.BoundPods(ctx)
	if err != nil {
		r.warn(area, "bound pods", fmt.Sprintf("cannot list the pods bound to this node: %v", err), "check --kubeconfig and that the API server answers")
		return
	}
	dependent := 0
	for i := range bound {
		if p, ok := pods.MountsDockerSocket(&bound[i]); ok {
			dependent++
			r.warn(area, "bound pod", fmt.Sprintf("pod %s/%s mounts %s by hostPath, which exposes the Docker socket", bound[i].Namespace, bound[i].Name, p),
				"change its workload to use the CRI socket (or crictl) instead of Docker's, or to mount a narrower path")
		}
	}
	if dependent == 0 {
		r.ok(area, "bound pods", fmt.Sprintf("none of the %d pods bound to this node mounts the Docker socket or a directory above it", len(bound)))
	}
}

// checkRegistryMirrors prints the containerd and CRI-O equivalents of
// Docker's registry-mirrors.
func checkRegistryMirrors(env Env, r *Report) {
	const area = "dockershim"
	data, err := os.ReadFile(env.DockerConfig)
	if err != nil {
		r.ok(area, "registry mirrors", "no "+env.DockerConfig)
		return
	}
	var cfg struct {
		Mirrors  []string `json:"registry-mirrors"`
		Insecure []string `json:"insecure-registries"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		r.warn(area, "registry mirrors", fmt.Sprintf("%s does not parse: %v", env.DockerConfig, err), "fix the file or remove it")
		return
	}
	if len(cfg.Mirrors) == 0 {
		r.ok(area, "registry mirrors", env.DockerConfig+" configures no mirrors")
		return
	}
	var hosts, crio strings.Builder
	hosts.WriteString("/etc/containerd/certs.d/docker.io/hosts.toml:\n  server = \"https://registry-1.docker.io\"\n")
	crio.WriteString("/etc/containers/registries.conf:\n  [[registry]]\n  location = \"docker.io\"\n")
	for _, m := range cfg.Mirrors {
		fmt.Fprintf(&hosts, "  [host.%q]\n    capabilities = [\"pull\", \"resolve\"]\n", m)
		fmt.Fprintf(&crio, "  [[registry.mirror]]\n  location = %q\n", strings.TrimPrefix(strings.TrimPrefix(m, "https://"), "http://"))
	}
	r.warn(area, "registry mirrors", fmt.Sprintf("%s sets %d registry mirror(s) that the CRI runtime does not read", env.DockerConfig, len(cfg.Mirrors)),
		"write the equivalent for your runtime:\n"+hosts.String()+crio.String())
}

// findProcess returns the pid of a process whose command name is comm, or 0.
func findProcess(comm string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(data)) == comm {
			return pid
		}
	}
	return 0
}
