// Package client talks to a running knode over its HTTPS API, for the
// command line (`knode get pods`, `knode logs`, `knode checkpoint`).
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options locate the agent and the credentials to present.
type Options struct {
	Server      string
	Kubeconfig  string
	CertFile    string
	KeyFile     string
	CAFile      string
	RootDir     string
	InsecureTLS bool
}

// AddFlags registers the client flags, named as kubectl names them.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Server, "server", "https://127.0.0.1:10250", "knode API address")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig-style file with the server and client certificate")
	fs.StringVar(&o.CertFile, "client-certificate", "", "client certificate (default: <root-dir>/pki/admin.crt)")
	fs.StringVar(&o.KeyFile, "client-key", "", "client key (default: <root-dir>/pki/admin.key)")
	fs.StringVar(&o.CAFile, "certificate-authority", "", "CA of the serving certificate (default: <root-dir>/pki/kubelet.crt)")
	fs.StringVar(&o.RootDir, "root-dir", "/var/lib/kubelet", "knode's root dir, where its local credentials are")
	fs.BoolVar(&o.InsecureTLS, "insecure-skip-tls-verify", false, "do not verify the serving certificate")
}

// Client is an authenticated connection to one agent.
type Client struct {
	base *url.URL
	http *http.Client
}

// New builds a client from a kubeconfig file, or flags, or knode's local credentials.
func New(o Options) (*Client, error) {
	if o.Kubeconfig != "" {
		return fromKubeconfig(o.Kubeconfig)
	}
	pki := filepath.Join(o.RootDir, "pki")
	if o.CertFile == "" && o.KeyFile == "" {
		o.CertFile, o.KeyFile = filepath.Join(pki, "admin.crt"), filepath.Join(pki, "admin.key")
	}
	if o.CAFile == "" && !o.InsecureTLS {
		o.CAFile = filepath.Join(pki, "kubelet.crt")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureTLS}
	if o.CAFile != "" && !o.InsecureTLS {
		data, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("%s holds no PEM certificate", o.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load client certificate (run as root on the node, or pass --client-certificate/--client-key): %w", err)
	}
	tlsCfg.Certificates = []tls.Certificate{cert}
	base, err := url.Parse(o.Server)
	if err != nil {
		return nil, fmt.Errorf("server address: %w", err)
	}
	return &Client{base: base, http: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}}, nil
}

func fromKubeconfig(path string) (*Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig transport: %w", err)
	}
	base, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig server: %w", err)
	}
	return &Client{base: base, http: &http.Client{Transport: transport}}, nil
}

// Do sends one request; a non-2xx answer becomes an error carrying the body.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, query), nil)
	if err != nil {
		return nil, err
	}
	return c.send(req, method, path)
}

// DoBody is Do with a JSON request body.
func (c *Client) DoBody(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, nil), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.send(req, method, path)
}

// url is path (and query) on the agent's address.
func (c *Client) url(path string, query url.Values) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	return u.String()
}

func (c *Client) send(req *http.Request, method, path string) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp, nil
}

// GetJSON decodes a JSON answer into v.
func (c *Client) GetJSON(ctx context.Context, path string, query url.Values, v any) error {
	resp, err := c.Do(ctx, http.MethodGet, path, query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// Pods lists the agent's pods.
func (c *Client) Pods(ctx context.Context) (*v1.PodList, error) {
	var list v1.PodList
	if err := c.GetJSON(ctx, "/pods", nil, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// Logs copies a container's log to w; follow streams until ctx ends or the container stops.
func (c *Client) Logs(ctx context.Context, namespace, pod, container string, query url.Values, w io.Writer) error {
	resp, err := c.Do(ctx, http.MethodGet, "/containerLogs/"+url.PathEscape(namespace)+"/"+url.PathEscape(pod)+"/"+url.PathEscape(container), query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Age formats a duration the way kubectl does (5s, 3m, 2h, 4d).
func Age(since time.Time, now time.Time) string {
	if since.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(since)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
