package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/cri"
)

func socketPath(endpoint string) string { return strings.TrimPrefix(endpoint, "unix://") }

// connect dials endpoint once, briefly; the doctor does not wait for runtimes.
func connect(ctx context.Context, endpoint string) (*cri.Runtime, error) {
	if err := cri.CheckEndpoint(endpoint); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return cri.Connect(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), endpoint, 3*time.Second)
}

func checkRuntime(ctx context.Context, env Env, r *Report) {
	const area = "runtime"
	candidates := append([]string{env.endpoint()}, env.KnownSockets...)
	seen := map[string]bool{}
	for _, c := range candidates {
		p := socketPath(c)
		if seen[p] {
			continue
		}
		seen[p] = true
		if _, err := os.Stat(p); err != nil {
			if c == env.endpoint() {
				if env.Endpoint == "" {
					r.warn(area, "endpoint", fmt.Sprintf("knode's embedded containerd socket %s is not there", p), "start `knode run` (it starts its containerd), or set --container-runtime-endpoint")
				} else {
					r.problem(area, "endpoint", fmt.Sprintf("configured endpoint %s does not exist", p), "start the runtime or fix --container-runtime-endpoint")
				}
			}
			continue
		}
		if strings.HasSuffix(p, "dockershim.sock") || strings.HasSuffix(p, "/docker.sock") {
			r.warn(area, "endpoint", fmt.Sprintf("%s exists: dockershim was removed in Kubernetes 1.24", p), "use containerd or CRI-O, or cri-dockerd to keep Docker Engine")
			continue
		}
		rt, err := connect(ctx, c)
		if err != nil {
			status := Warning
			if c == env.endpoint() {
				status = Problem
			}
			fix := "check that the runtime is running and speaks CRI v1"
			if errors.Is(err, cri.ErrNotCRIv1) {
				fix = "upgrade the runtime: containerd >= 1.7 or 2.x, CRI-O >= 1.24"
			}
			r.add(area, "endpoint", status, fmt.Sprintf("%s does not answer CRI v1: %v", p, err), fix)
			continue
		}
		msg := fmt.Sprintf("%s answers: %s, CRI v1", p, rt.Description())
		if c == env.endpoint() {
			msg += " (the runtime knode uses)"
			r.ok(area, "endpoint", msg)
			runtimeDetails(ctx, rt, r)
		} else {
			r.ok(area, "endpoint", msg)
		}
		rt.Close(context.Background())
	}
}

func runtimeDetails(ctx context.Context, rt *cri.Runtime, r *Report) {
	const area = "runtime"
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := rt.Status(ctx, true)
	if err != nil {
		r.problem(area, "status", fmt.Sprintf("Status failed: %v", err), "look at the runtime's log")
		return
	}
	for _, c := range st.GetStatus().GetConditions() {
		switch {
		case c.Status:
			r.ok(area, "condition", fmt.Sprintf("%s is true", c.Type))
		case c.Type == runtimeapi.NetworkReady:
			r.warn(area, "condition", fmt.Sprintf("NetworkReady is false: %s %s", c.Reason, c.Message), "install a CNI config (pod-network pods need it; host-network pods do not)")
		case c.Type == runtimeapi.RuntimeReady:
			r.problem(area, "condition", fmt.Sprintf("RuntimeReady is false: %s %s", c.Reason, c.Message), "look at the runtime's log")
		default:
			// Other conditions (deprecation warnings and the like) inform; pods still run.
			r.warn(area, "condition", fmt.Sprintf("%s is false: %s %s", c.Type, c.Reason, c.Message), "read the runtime's message; pods are not affected yet")
		}
	}
	if rc, err := rt.RuntimeConfig(ctx); err == nil && rc.GetLinux() != nil {
		driver := rc.GetLinux().GetCgroupDriver()
		if driver == runtimeapi.CgroupDriver_CGROUPFS {
			r.ok(area, "cgroup driver", "the runtime uses cgroupfs, as knode does")
		} else {
			r.problem(area, "cgroup driver", fmt.Sprintf("the runtime uses %s, knode uses cgroupfs", driver), "set SystemdCgroup = false in the runtime's runc options")
		}
	} else {
		r.warn(area, "cgroup driver", "the runtime does not report its cgroup driver (RuntimeConfig)", "make sure it uses cgroupfs, as knode does")
	}
	cdi := "unknown"
	if cfg, ok := st.GetInfo()["config"]; ok {
		var c struct {
			EnableCDI   *bool    `json:"enableCDI"`
			CDISpecDirs []string `json:"cdiSpecDirs"`
		}
		if json.Unmarshal([]byte(cfg), &c) == nil {
			switch {
			case c.EnableCDI != nil:
				cdi = fmt.Sprint(*c.EnableCDI)
			case len(c.CDISpecDirs) > 0:
				// containerd 2.x has CDI always on and reports only where specs live.
				cdi = "true"
			}
		}
	}
	switch cdi {
	case "true":
		r.ok(area, "CDI", "CDI is enabled: device plugins may answer with CDI devices")
	case "false":
		r.warn(area, "CDI", "CDI is disabled in the runtime", "enable CDI if device plugins answer with CDI devices")
	default:
		r.warn(area, "CDI", "the runtime does not say whether CDI is enabled", "containerd 2.x enables it by default; containerd 1.6 has none")
	}
	userNamespaces(st.GetRuntimeHandlers(), r)
}
