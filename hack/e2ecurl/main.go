// Command e2ecurl is `curl` in the conformance harness's agnhost image
// (upstream installs alpine's curl; the lifecycle-hook specs run
// `curl http://<ip>:<port>/echo?msg=...` in it). It does what those specs
// ask of curl: one request, the body on stdout, curl's exit codes (0 for
// any HTTP answer, 22 for an error status with -f, 7 when it cannot
// connect); anything else is refused, never ignored.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	method, out, fail, url := http.MethodGet, "", false, ""
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-s" || a == "--silent" || a == "-S" || a == "-sS" || a == "-L":
		case a == "-f" || a == "--fail" || a == "-sf" || a == "-fs":
			fail = true
		case (a == "-X" || a == "-o") && i+1 < len(args):
			if a == "-X" {
				method = args[i+1]
			} else {
				out = args[i+1]
			}
			i++
		case !strings.HasPrefix(a, "-") && url == "":
			url = a
		default:
			fmt.Fprintf(os.Stderr, "curl: option %s: not supported by this test image's curl\n", a)
			os.Exit(2)
		}
	}
	if url == "" {
		fmt.Fprintln(os.Stderr, "curl: no URL specified")
		os.Exit(2)
	}
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "curl:", err)
		os.Exit(3)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "curl: (7)", err)
		os.Exit(7)
	}
	defer resp.Body.Close()
	if fail && resp.StatusCode >= 400 {
		fmt.Fprintf(os.Stderr, "curl: (22) The requested URL returned error: %d\n", resp.StatusCode)
		os.Exit(22)
	}
	w := io.Writer(os.Stdout)
	if out != "" && out != "-" {
		f, err := os.Create(out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "curl: (23)", err)
			os.Exit(23)
		}
		defer f.Close()
		w = f
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		fmt.Fprintln(os.Stderr, "curl: (56)", err)
		os.Exit(56)
	}
}
