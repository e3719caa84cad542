package crispec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The API server's limits on a pod's resolver configuration
// (k8s.io/kubernetes/pkg/apis/core/validation), which the kubelet also
// applies to what it composes from the node's resolv.conf.
const (
	MaxDNSNameservers     = 3
	MaxDNSSearchPaths     = 32
	MaxDNSSearchListChars = 2048
	// maxResolvConfBytes bounds what is read of the node's resolv.conf, as
	// the kubelet's 10 MiB.
	maxResolvConfBytes = 10 << 20
)

// Event is an event a pure builder asks its caller to publish: about the
// pod, or, with Node set, about the node (the kubelet records some
// warnings on both: the node's owner fixes the node).
type Event struct {
	Reason, Message string
	Node            bool
}

// DNS composes a pod's resolver configuration as the kubelet's
// Configurer.GetPodDNS does. host is the node's resolv.conf (nil: no
// --resolv-conf, which the kubelet turns into the local resolver,
// 127.0.0.1 or ::1 and search "."). ClusterFirst (and
// ClusterFirstWithHostNet; ClusterFirst of a host-network pod is Default)
// takes node.ClusterDNS as the only nameservers, the searches
// <ns>.svc.<domain> svc.<domain> <domain> before the node's, and ndots:5;
// without cluster DNS it falls back to Default with the kubelet's
// MissingClusterDNS warning, on the node and on the pod. Default is the node's configuration, None an
// empty one. The pod's dnsConfig is then merged in (duplicates dropped, an
// option of the pod's replacing the node's of the same name), and the
// result cut to the API's limits with the kubelet's DNSConfigForming
// warning. The events are returned for the caller to publish.
func DNS(pod *v1.Pod, host *runtimeapi.DNSConfig, node Node) (*runtimeapi.DNSConfig, []Event) {
	var events []Event
	cfg := &runtimeapi.DNSConfig{}
	if host != nil {
		cfg.Servers = slices.Clone(host.Servers)
		cfg.Searches = slices.Clone(host.Searches)
		cfg.Options = slices.Clone(host.Options)
	}
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		// The API's default; static pods are not defaulted by an API server.
		policy = v1.DNSClusterFirst
	}
	if policy == v1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = v1.DNSDefault
	}
	switch policy {
	case v1.DNSNone:
		cfg = &runtimeapi.DNSConfig{}
	case v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet:
		if len(node.ClusterDNS) > 0 {
			cfg.Servers = slices.Clone(node.ClusterDNS)
			cfg.Searches = clusterSearches(cfg.Searches, pod.Namespace, node.ClusterDomain)
			cfg.Options = []string{"ndots:5"}
			break
		}
		msg := fmt.Sprintf("kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.", v1.DNSClusterFirst, v1.DNSDefault)
		events = append(events, Event{Reason: "MissingClusterDNS", Message: msg, Node: true},
			Event{Reason: "MissingClusterDNS", Message: fmt.Sprintf("pod: %q. %s", podDesc(pod), msg)})
		hostDefaults(cfg, host, node)
	default:
		// Default, and what the API server would have refused: the kubelet
		// treats an unknown policy as ClusterFirst, knode's validation
		// refuses it before it gets here.
		hostDefaults(cfg, host, node)
	}
	if pc := pod.Spec.DNSConfig; pc != nil {
		cfg.Servers = omitDuplicates(append(cfg.Servers, pc.Nameservers...))
		cfg.Searches = omitDuplicates(append(cfg.Searches, pc.Searches...))
		cfg.Options = mergeDNSOptions(cfg.Options, pc.Options)
	}
	if len(cfg.Servers) > MaxDNSNameservers {
		cfg.Servers = cfg.Servers[:MaxDNSNameservers]
		events = append(events, Event{Reason: "DNSConfigForming", Message: "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: " + strings.Join(cfg.Servers, " ")})
	}
	var cut bool
	if cfg.Searches, cut = searchesWithinLimits(cfg.Searches); cut {
		events = append(events, Event{Reason: "DNSConfigForming", Message: "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: " + strings.Join(cfg.Searches, " ")})
	}
	return cfg, events
}

// podDesc is the kubelet's format.Pod: <name>_<namespace>(<uid>).
func podDesc(pod *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// hostDefaults is policy Default without a resolv.conf: the kubelet points
// the pod at the local resolver (one per node address family) and
// searches only the root.
func hostDefaults(cfg *runtimeapi.DNSConfig, host *runtimeapi.DNSConfig, node Node) {
	if host != nil {
		return
	}
	server := "127.0.0.1"
	if ip := net.ParseIP(node.HostIP); ip != nil && ip.To4() == nil {
		server = "::1"
	}
	cfg.Servers = []string{server}
	cfg.Searches = []string{"."}
}

// clusterSearches puts the cluster's search domains before the node's.
func clusterSearches(hostSearches []string, namespace, domain string) []string {
	if domain == "" {
		return hostSearches
	}
	cluster := []string{namespace + ".svc." + domain, "svc." + domain, domain}
	return omitDuplicates(append(cluster, hostSearches...))
}

func omitDuplicates(in []string) []string {
	seen := make(map[string]bool, len(in))
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// mergeDNSOptions adds the pod's options to the node's: one per name, the
// pod's value winning. The kubelet's order is a map's; here an option
// keeps the place of its name's first appearance, so a config is
// reproducible.
func mergeDNSOptions(existing []string, pod []v1.PodDNSConfigOption) []string {
	all := slices.Clone(existing)
	for _, o := range pod {
		opt := o.Name
		if o.Value != nil && *o.Value != "" {
			opt += ":" + *o.Value
		}
		all = append(all, opt)
	}
	return appendOptions(nil, all...)
}

// appendOptions adds options, a later one replacing an earlier of the
// same name in its place.
func appendOptions(options []string, add ...string) []string {
	at := map[string]int{}
	for i, o := range options {
		name, _, _ := strings.Cut(o, ":")
		at[name] = i
	}
	for _, o := range add {
		name, _, _ := strings.Cut(o, ":")
		if i, ok := at[name]; ok {
			options[i] = o
			continue
		}
		at[name] = len(options)
		options = append(options, o)
	}
	return options
}

// searchesWithinLimits applies the kubelet's cuts: at most 32 domains,
// none longer than 253 bytes (glibc aborts on longer ones), and the line
// at most 2048 bytes, cut from the end.
func searchesWithinLimits(searches []string) ([]string, bool) {
	cut := false
	if len(searches) > MaxDNSSearchPaths {
		searches, cut = searches[:MaxDNSSearchPaths], true
	}
	kept := searches[:0:0]
	for _, s := range searches {
		if len(s) > validation.DNS1123SubdomainMaxLength {
			cut = true
			continue
		}
		kept = append(kept, s)
	}
	for len(kept) > 0 && len(strings.Join(kept, " ")) > MaxDNSSearchListChars {
		kept, cut = kept[:len(kept)-1], true
	}
	return kept, cut
}

// ParseResolvConf reads a resolv.conf as the kubelet does: nameservers
// accumulate, the last search line wins (without "." and trailing dots),
// options accumulate with a later one of the same name replacing the
// earlier. A nameserver line without an address is an error.
func ParseResolvConf(r io.Reader) (*runtimeapi.DNSConfig, error) {
	cfg := &runtimeapi.DNSConfig{}
	var errs []error
	sc := bufio.NewScanner(io.LimitReader(r, maxResolvConfBytes))
	sc.Buffer(make([]byte, 0, 4096), maxResolvConfBytes)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) < 2 {
				errs = append(errs, errors.New("nameserver list is empty "))
				continue
			}
			cfg.Servers = append(cfg.Servers, fields[1])
		case "search":
			cfg.Searches = nil
			for _, s := range fields[1:] {
				if s != "." {
					cfg.Searches = append(cfg.Searches, strings.TrimSuffix(s, "."))
				}
			}
		case "options":
			cfg.Options = appendOptions(cfg.Options, fields[1:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return cfg, errors.Join(errs...)
}
