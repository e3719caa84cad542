package containerd

import (
	"os/exec"
	"strings"
	"testing"
)

func TestRenderConfig(t *testing.T) {
	l := Layout{Dir: `/var/lib/kn "ode"`}
	s := Settings{SandboxImage: "reg/pause:3.10", RuncBinary: "/usr/bin/runc", CNIBinDirs: []string{"/opt/cni/bin", "/a b"}, EnableRestore: true}
	out, err := RenderConfig(l, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"version = 3\n",
		`root = "/var/lib/kn \"ode\"/root"` + "\n",
		`  address = "/var/lib/kn \"ode\"/containerd.sock"` + "\n",
		"  enable_experimental_restore_via_create = true\n",
		`  cdi_spec_dirs = ["/var/lib/kn \"ode\"/cdi"]` + "\n",
		`        BinaryName = "/usr/bin/runc"` + "\n",
		`        Root = "/var/lib/kn \"ode\"/state/runc"` + "\n",
		`    bin_dirs = ["/opt/cni/bin","/a b"]` + "\n",
		`    sandbox = "reg/pause:3.10"` + "\n",
		"  restrict_oom_score_adj = " + map[bool]string{true: "false", false: "true"}[canLowerOOMScore()] + "\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "%!") {
		t.Errorf("config has a format error:\n%s", out)
	}
}

// TestNoTemplateExecution guards knode's binary size: a reachable
// text/template execution (knode's own, or html/template through grpc's
// x/net/trace unless built with -tags grpcnotrace) makes the linker keep
// every exported method of every type, about 5 MB that stays resident.
func TestNoTemplateExecution(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "grpcnotrace", "-deps", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "knode.io/knode/cmd/knode").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		if pkg == "html/template" {
			t.Errorf("knode links html/template; who imports it: go list -deps -tags grpcnotrace ./cmd/knode")
		}
		if strings.HasPrefix(pkg, "knode.io/knode/") {
			for _, imp := range strings.Fields(imports) {
				if imp == "text/template" || imp == "html/template" {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
}

// TestRenderConfigRuncHandlers: each extra handler runs its own runc with
// its own state root; a name that is not a DNS label is refused.
func TestRenderConfigRuncHandlers(t *testing.T) {
	l := Layout{Dir: "/k"}
	s := Settings{SandboxImage: "p", RuncBinary: "/usr/sbin/runc", RuncHandlers: []RuncHandler{{Name: "runc-userns", Binary: "/tools/runc-v1.5.3/runc"}}}
	out, err := RenderConfig(l, s)
	if err != nil {
		t.Fatal(err)
	}
	want := `    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc-userns]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc-userns.options]
        BinaryName = "/tools/runc-v1.5.3/runc"
        SystemdCgroup = false
        Root = "/k/state/runc-runc-userns"
  [plugins.'io.containerd.cri.v1.runtime'.cni]
`
	if !strings.Contains(string(out), want) {
		t.Errorf("config lacks the handler:\n%s", out)
	}
	if !strings.Contains(string(out), `default_runtime_name = "runc"`) || !strings.Contains(string(out), `BinaryName = "/usr/sbin/runc"`) {
		t.Errorf("the default handler changed:\n%s", out)
	}
	for _, bad := range []string{"", "runc", "a.b", "x]\n[evil", "UPPER"} {
		s.RuncHandlers = []RuncHandler{{Name: bad, Binary: "/r"}}
		if _, err := RenderConfig(l, s); err == nil {
			t.Errorf("handler name %q accepted", bad)
		}
	}
}
