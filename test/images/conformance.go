package images

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The Kubernetes e2e suite's images, named exactly as
// test/utils/image/manifest.go of Kubernetes v1.37.2 names them, so that
// pods' default IfNotPresent finds them in the runtime and the suite needs
// neither a registry nor KUBE_TEST_REPO_LIST. Each archive holds a local
// build that behaves as the upstream image does for the node conformance
// specs (see docs/conformance.md for what differs).
var (
	E2EPause      = []string{"registry.k8s.io/pause:3.10.2", "registry.k8s.io/pause:3.10.1", Pause}
	E2EBusybox    = []string{"registry.k8s.io/e2e-test-images/busybox:1.37.0-2"}
	E2EAgnhost    = []string{"registry.k8s.io/e2e-test-images/agnhost:2.66.1", "registry.k8s.io/e2e-test-images/agnhost:2.55"}
	E2ENginx      = []string{"registry.k8s.io/e2e-test-images/nginx:1.27.0-2", "registry.k8s.io/e2e-test-images/nginx:1.28.0-2"}
	E2ENonewprivs = []string{"registry.k8s.io/e2e-test-images/nonewprivs:1.4"}
	E2ENonroot    = []string{"registry.k8s.io/e2e-test-images/nonroot:1.5"}
)

// E2EBinaries are the static binaries the e2e images are made of.
type E2EBinaries struct {
	Pause   string // hack/pause
	Busybox string // Debian's busybox-static
	// Shell is /bin/sh of the busybox image (hack/e2esh): busybox's shell
	// except that `sh -c env` keeps every variable.
	Shell   string
	Agnhost string // k8s.io/kubernetes/test/images/agnhost
	// Curl is curl in the agnhost image (hack/e2ecurl): the hook specs
	// run it there.
	Curl       string
	Nonewprivs string // k8s.io/kubernetes/test/images/nonewprivs (nnp)
}

const e2ePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// WriteE2E writes one archive per e2e image into dir.
func WriteE2E(dir string, b E2EBinaries) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pause, err := os.ReadFile(b.Pause)
	if err != nil {
		return fmt.Errorf("read pause binary: %w", err)
	}
	if err := writeTags(filepath.Join(dir, "e2e-pause.tar"), E2EPause, []file{{name: "pause", mode: 0o755, data: pause}},
		v1.Config{Entrypoint: []string{"/pause"}}); err != nil {
		return err
	}
	// The upstream busybox image: every applet in /bin (the Sysctls spec
	// runs /bin/sysctl).
	flat, err := busyboxRoot(b.Busybox, b.Shell, true, nil, nil)
	if err != nil {
		return err
	}
	if err := writeTags(filepath.Join(dir, "e2e-busybox.tar"), E2EBusybox, flat, v1.Config{Cmd: []string{"sh"}, Env: []string{e2ePath}}); err != nil {
		return err
	}
	// agnhost is built on alpine: applets where alpine has them, the
	// binary at /agnhost, and the user and group the image defines.
	agn, err := os.ReadFile(b.Agnhost)
	if err != nil {
		return fmt.Errorf("read agnhost binary: %w", err)
	}
	root, err := busyboxRoot(b.Busybox, b.Shell, false,
		[]string{"user-defined-in-image:x:1000:1000:Linux User,,,:/home/user-defined-in-image:/bin/sh"},
		[]string{"user-defined-in-image:x:1000:", "group-defined-in-image:x:50000:user-defined-in-image"})
	if err != nil {
		return err
	}
	curl, err := os.ReadFile(b.Curl)
	if err != nil {
		return fmt.Errorf("read curl binary: %w", err)
	}
	agnFiles := append(append([]file{}, root...), file{name: "usr/bin/curl", mode: 0o755, data: curl},
		file{name: "agnhost", mode: 0o755, data: agn}, file{name: "agnhost-2", link: "agnhost"},
		file{name: "uploads", dir: true}, file{name: "home", dir: true},
		file{name: "home/user-defined-in-image", dir: true})
	if err := writeTags(filepath.Join(dir, "e2e-agnhost.tar"), E2EAgnhost, agnFiles,
		v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{e2ePath}}); err != nil {
		return err
	}
	// nginx: for these specs a web server on port 80 that stops on TERM and
	// QUIT is all that is asked of it; busybox's httpd is one.
	nginxFiles := append(append([]file{}, root...),
		file{name: "usr/share", dir: true}, file{name: "usr/share/nginx", dir: true}, file{name: "usr/share/nginx/html", dir: true},
		file{name: "usr/share/nginx/html/index.html", mode: 0o644, data: []byte("<html><body><h1>Welcome to nginx!</h1></body></html>\n")})
	if err := writeTags(filepath.Join(dir, "e2e-nginx.tar"), E2ENginx, nginxFiles, v1.Config{
		Cmd:          []string{"/bin/sh", "-c", "trap 'exit 0' TERM QUIT; httpd -f -p 80 -h /usr/share/nginx/html & wait"},
		Env:          []string{e2ePath},
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
	}); err != nil {
		return err
	}
	// nonewprivs: the upstream program, setuid root.
	nnp, err := os.ReadFile(b.Nonewprivs)
	if err != nil {
		return fmt.Errorf("read nonewprivs binary: %w", err)
	}
	nnpFiles := append(append([]file{}, root...), file{name: "usr/local/bin/nnp", mode: 0o4755, data: nnp})
	if err := writeTags(filepath.Join(dir, "e2e-nonewprivs.tar"), E2ENonewprivs, nnpFiles,
		v1.Config{Cmd: []string{"nnp"}, Env: []string{e2ePath}}); err != nil {
		return err
	}
	// nonroot: its base image with USER 1234.
	return writeTags(filepath.Join(dir, "e2e-nonroot.tar"), E2ENonroot, root,
		v1.Config{Cmd: []string{"/bin/sh"}, Env: []string{e2ePath}, User: "1234"})
}

// busyboxRoot is a root filesystem of one static busybox with a link for
// every applet it has (all in /bin when flat, else where alpine puts them),
// shell as /bin/sh when given, and passwd and group files with the extra
// lines.
func busyboxRoot(busyboxBinary, shell string, flat bool, passwd, group []string) ([]file, error) {
	bin, err := os.ReadFile(busyboxBinary)
	if err != nil {
		return nil, fmt.Errorf("read busybox binary: %w", err)
	}
	out, err := exec.Command(busyboxBinary, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	files := []file{{name: "tmp", dir: true, mode: 0o1777}, {name: "root", dir: true, mode: 0o700}, {name: "var", dir: true}}
	for _, d := range []string{"bin", "sbin", "etc", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "usr/local/sbin"} {
		files = append(files, file{name: d, dir: true})
	}
	files = append(files, file{name: "bin/busybox", mode: 0o755, data: bin})
	seen := map[string]bool{"bin/busybox": true}
	var links []string
	for _, p := range strings.Fields(string(out)) {
		if flat {
			p = "bin/" + path.Base(p)
		}
		if !seen[p] {
			seen[p] = true
			links = append(links, p)
		}
	}
	sort.Strings(links)
	for _, p := range links {
		if p == "bin/sh" && shell != "" {
			continue
		}
		files = append(files, file{name: p, link: "/bin/busybox"})
	}
	if shell != "" {
		sh, err := os.ReadFile(shell)
		if err != nil {
			return nil, fmt.Errorf("read shell: %w", err)
		}
		files = append(files, file{name: "bin/sh", mode: 0o755, data: sh})
	}
	pw := append([]string{"root:x:0:0:root:/root:/bin/sh", "daemon:x:1:1:daemon:/usr/sbin:/bin/false",
		"bin:x:2:2:bin:/bin:/bin/false", "nobody:x:65534:65534:nobody:/:/bin/false"}, passwd...)
	gr := append([]string{"root:x:0:", "daemon:x:1:", "bin:x:2:", "nogroup:x:65534:"}, group...)
	files = append(files,
		file{name: "etc/passwd", mode: 0o644, data: []byte(strings.Join(pw, "\n") + "\n")},
		file{name: "etc/group", mode: 0o644, data: []byte(strings.Join(gr, "\n") + "\n")})
	return files, nil
}
