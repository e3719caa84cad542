package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/checkpoint/format"
	"knode.io/knode/internal/criu"
	"knode.io/knode/internal/nodeinfo"
)

func checkCheckpoint(ctx context.Context, env Env, r *Report) {
	const area = "checkpoint"
	if !env.CheckpointGate {
		r.warn(area, "feature gate", "ContainerCheckpoint is off: POST /checkpoint answers 404", "drop --feature-gates=ContainerCheckpoint=false")
	} else {
		r.ok(area, "feature gate", "ContainerCheckpoint is on")
	}
	dir := filepath.Join(env.RootDir, "checkpoints")
	if fi, err := os.Stat(dir); err != nil {
		r.warn(area, "directory", fmt.Sprintf("%s does not exist yet", dir), "knode creates it (0700) at start")
	} else {
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o700 || st.Uid != 0 {
			r.problem(area, "directory", fmt.Sprintf("%s is mode %v, owner uid %d: archives hold all of a container's memory", dir, fi.Mode().Perm(), st.Uid),
				"chown root "+dir+" && chmod 0700 "+dir)
		} else {
			r.ok(area, "directory", dir+" is 0700, owned by root")
		}
		checkArchives(env, dir, r)
	}
	probeCheckpoint(ctx, env, r)
	found := criu.Find()
	kernel := nodeinfo.KernelRelease()
	switch {
	case found.Err != nil:
		r.problem(area, "criu", found.Err.Error(), "install CRIU >= 4.1 (Debian 12: hack/setup-criu.sh) and put it first on the runtime's PATH")
	case criu.VDSOProblem(found.Version, kernel):
		r.problem(area, "criu", fmt.Sprintf("CRIU %s (%s) on kernel %s: CRIU before 4.1 fails on kernels from 6.13 with \"Unexpected rt vDSO area bounds\" (the vvar_vclock split)", found.Version, found.Path, kernel),
			"install CRIU >= 4.1 (Debian 12: hack/setup-criu.sh) and put it first on the runtime's PATH")
	case !criu.VersionAtLeast(found.Version, "3.16"):
		r.problem(area, "criu", fmt.Sprintf("CRIU %s at %s is older than 3.16, which runc needs", found.Version, found.Path), "install CRIU >= 4.1")
	default:
		r.ok(area, "criu", fmt.Sprintf("CRIU %s at %s, kernel %s", found.Version, found.Path, kernel))
	}
}

func checkArchives(env Env, dir string, r *Report) {
	const area = "checkpoint"
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil {
		free := int64(fs.Bavail) * fs.Bsize
		r.ok(area, "free space", fmt.Sprintf("%.1f GiB free under %s", float64(free)/(1<<30), dir))
	}
	entries, _ := os.ReadDir(dir)
	var count int
	var bytes int64
	for _, e := range entries {
		if !format.ValidName(e.Name()) {
			continue
		}
		if info, err := e.Info(); err == nil {
			count++
			bytes += info.Size()
		}
	}
	msg := fmt.Sprintf("%d archives, %.1f MiB", count, float64(bytes)/(1<<20))
	if b := env.Retention.MaxTotalBytes; b > 0 {
		msg += fmt.Sprintf(" of a %.1f GiB budget", float64(b)/(1<<30))
		if bytes > b {
			r.warn(area, "archives", msg, "knode applies retention at its next start or checkpoint")
			return
		}
	}
	r.ok(area, "archives", msg)
}

// probeCheckpoint asks the runtime to checkpoint a container that does not
// exist: a runtime without the call answers Unimplemented; one with it
// answers NotFound. Nothing is written either way.
func probeCheckpoint(ctx context.Context, env Env, r *Report) {
	const area = "checkpoint"
	rt, err := connect(ctx, env.endpoint())
	if err != nil {
		r.warn(area, "runtime support", fmt.Sprintf("cannot ask the runtime: %v", err), "run the doctor while the runtime is up")
		return
	}
	defer rt.Close(context.Background())
	checkRestore(ctx, rt.Name(), rt.Description(), rt, r)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = rt.RuntimeService.CheckpointContainer(pctx, &runtimeapi.CheckpointContainerRequest{
		ContainerId: "knode-doctor-probe-no-such-container",
		Location:    filepath.Join(os.TempDir(), "knode-doctor-probe.tar"),
	})
	_ = os.Remove(filepath.Join(os.TempDir(), "knode-doctor-probe.tar"))
	if status.Code(err) == codes.Unimplemented {
		r.problem(area, "runtime support", criu.Diagnosis(err, rt.Description()),
			"use containerd 2.x, or CRI-O >= 1.25 with enable_criu_support = true")
		return
	}
	r.ok(area, "runtime support", fmt.Sprintf("%s implements CheckpointContainer", rt.Description()))
}

// checkRestore tells whether the runtime can restore an archive given as a
// container's image (what knode's restore uses): containerd 2.1–2.3 with
// enable_experimental_restore_via_create, CRI-O with checkpoint/restore on.
func checkRestore(ctx context.Context, name, description string, rt interface {
	Status(context.Context, bool) (*runtimeapi.StatusResponse, error)
}, r *Report) {
	const area = "checkpoint"
	version := strings.TrimPrefix(strings.TrimPrefix(description, name+"://"), "v")
	switch {
	case name == "containerd" && criu.VersionAtLeast(version, "2.4"):
		r.problem(area, "restore", fmt.Sprintf("%s cannot restore a checkpoint through CRI: 2.4 removed restore via CreateContainer", description),
			"restore on containerd 2.1–2.3 with enable_experimental_restore_via_create = true, or on CRI-O with checkpoint/restore enabled")
	case name == "containerd" && criu.VersionAtLeast(version, "2.1"):
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := rt.Status(sctx, true)
		enabled := false
		if err == nil {
			var cfg struct {
				Restore bool `json:"enableExperimentalRestoreViaCreate"`
			}
			enabled = json.Unmarshal([]byte(st.GetInfo()["config"]), &cfg) == nil && cfg.Restore
		}
		if enabled {
			r.ok(area, "restore", description+" restores checkpoint archives (enable_experimental_restore_via_create = true)")
		} else {
			r.problem(area, "restore", description+" can restore only with enable_experimental_restore_via_create = true, which is not set",
				"set it in the runtime's [plugins.'io.containerd.cri.v1.runtime'] section and restart it")
		}
	case name == "cri-o":
		r.ok(area, "restore", description+" restores checkpoint archives when checkpoint/restore is enabled (enable_criu_support = true)")
	default:
		r.warn(area, "restore", description+" is not known to restore checkpoints through CRI",
			"restore on containerd 2.1–2.3 with enable_experimental_restore_via_create = true, or on CRI-O")
	}
}
