package migrate

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// NodeEndpoints lists the cluster's nodes' API endpoints (host:port, from
// the Node objects' addresses and kubelet ports). Cluster mode implements it.
type NodeEndpoints interface {
	NodeEndpoints(ctx context.Context) ([]string, error)
}

// Peers decides which nodes POST /restores may pull archives from: the
// operator's --restore-peers, and in cluster mode the cluster's nodes.
// Anyone allowed to call POST /restores could otherwise make this node
// connect, with its peer credentials, to any address it names.
type Peers struct {
	rules []peerRule
	nodes NodeEndpoints
}

// peerRule is one --restore-peers entry: a host (any port), a host:port,
// or a CIDR (any port).
type peerRule struct {
	host   string // lower-case name or canonical IP; "" for a CIDR
	port   string // "" for any
	prefix netip.Prefix
}

// NewPeers parses --restore-peers entries; nodes may be nil (no cluster).
func NewPeers(entries []string, nodes NodeEndpoints) (*Peers, error) {
	p := &Peers{nodes: nodes}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if pfx, err := netip.ParsePrefix(e); err == nil {
			p.rules = append(p.rules, peerRule{prefix: pfx.Masked()})
			continue
		}
		host, port := e, ""
		if h, pt, err := net.SplitHostPort(e); err == nil {
			host, port = h, pt
			if n, err := netip.ParseAddrPort("0.0.0.0:" + pt); err != nil || n.Port() == 0 {
				return nil, fmt.Errorf("--restore-peers %q: bad port", e)
			}
		}
		host = strings.Trim(host, "[]")
		if host == "" || strings.ContainsAny(host, "/ ") {
			return nil, fmt.Errorf("--restore-peers %q: want host, host:port or CIDR", e)
		}
		p.rules = append(p.rules, peerRule{host: canonicalHost(host), port: port})
	}
	return p, nil
}

// canonicalHost makes IPs comparable (::ffff:10.0.0.1 is 10.0.0.1) and
// names case-insensitive.
func canonicalHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// Trusted reports whether host:port is a peer. Names match only as
// written (no DNS lookup decides trust); CIDRs match IP literals.
func (p *Peers) Trusted(ctx context.Context, host, port string) (bool, error) {
	if p == nil {
		return false, nil
	}
	h := canonicalHost(host)
	addr, ipErr := netip.ParseAddr(h)
	isIP := ipErr == nil
	for _, r := range p.rules {
		if r.prefix.IsValid() {
			if isIP && r.prefix.Contains(addr) {
				return true, nil
			}
			continue
		}
		if r.host == h && (r.port == "" || r.port == port) {
			return true, nil
		}
	}
	if p.nodes == nil {
		return false, nil
	}
	eps, err := p.nodes.NodeEndpoints(ctx)
	if err != nil {
		return false, fmt.Errorf("list the cluster's nodes: %w", err)
	}
	for _, ep := range eps {
		eh, ept, err := net.SplitHostPort(ep)
		if err == nil && canonicalHost(eh) == h && ept == port {
			return true, nil
		}
	}
	return false, nil
}
