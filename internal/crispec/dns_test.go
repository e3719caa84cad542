package crispec

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestDNS(t *testing.T) {
	host := &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"lan", "corp"}, Options: []string{"ndots:2", "edns0"}}
	cluster := Node{HostIP: "192.0.2.10", ClusterDomain: "cluster.local", ClusterDNS: []string{"10.96.0.10"}}
	noCluster := Node{HostIP: "192.0.2.10", ClusterDomain: "cluster.local"}
	three, empty := "3", ""
	nodeMissing := `kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`
	missing := `pod: "web_prod(uid-1)". kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`
	long := strings.Repeat("a", 254)
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("d%d.example", i))
	}
	var wide []string
	for i := range 30 {
		wide = append(wide, fmt.Sprintf("%070d", i))
	}
	for _, tt := range []struct {
		name       string
		policy     v1.DNSPolicy
		hostNet    bool
		dnsConfig  *v1.PodDNSConfig
		host       *runtimeapi.DNSConfig
		node       Node
		want       *runtimeapi.DNSConfig
		wantEvents []Event
	}{
		{name: "ClusterFirst: the cluster's servers, namespace searches before the node's, ndots:5",
			policy: v1.DNSClusterFirst, host: host, node: cluster,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"},
				Searches: []string{"prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "lan", "corp"}, Options: []string{"ndots:5"}}},
		{name: "an unset policy is the API's default, ClusterFirst",
			host: host, node: cluster,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"},
				Searches: []string{"prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "lan", "corp"}, Options: []string{"ndots:5"}}},
		{name: "ClusterFirst without a cluster domain keeps the node's searches",
			policy: v1.DNSClusterFirst, host: host, node: Node{ClusterDNS: []string{"10.96.0.10"}},
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"lan", "corp"}, Options: []string{"ndots:5"}}},
		{name: "ClusterFirst without cluster DNS falls back to Default with MissingClusterDNS",
			policy: v1.DNSClusterFirst, host: host, node: noCluster,
			want:       &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"lan", "corp"}, Options: []string{"ndots:2", "edns0"}},
			wantEvents: []Event{{Reason: "MissingClusterDNS", Message: nodeMissing, Node: true}, {Reason: "MissingClusterDNS", Message: missing}}},
		{name: "ClusterFirst of a host-network pod is Default",
			policy: v1.DNSClusterFirst, hostNet: true, host: host, node: cluster,
			want: &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"lan", "corp"}, Options: []string{"ndots:2", "edns0"}}},
		{name: "ClusterFirstWithHostNet gives a host-network pod the cluster's DNS",
			policy: v1.DNSClusterFirstWithHostNet, hostNet: true, host: host, node: cluster,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"},
				Searches: []string{"prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "lan", "corp"}, Options: []string{"ndots:5"}}},
		{name: "Default is the node's resolv.conf even with cluster DNS",
			policy: v1.DNSDefault, host: host, node: cluster,
			want: &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"lan", "corp"}, Options: []string{"ndots:2", "edns0"}}},
		{name: "Default without a resolv.conf is the local resolver, searching the root",
			policy: v1.DNSDefault, node: cluster,
			want: &runtimeapi.DNSConfig{Servers: []string{"127.0.0.1"}, Searches: []string{"."}}},
		{name: "Default without a resolv.conf on an IPv6 node",
			policy: v1.DNSDefault, node: Node{HostIP: "2001:db8::1"},
			want: &runtimeapi.DNSConfig{Servers: []string{"::1"}, Searches: []string{"."}}},
		{name: "None: the pod's dnsConfig alone",
			policy: v1.DNSNone, host: host, node: cluster,
			dnsConfig: &v1.PodDNSConfig{Nameservers: []string{"192.0.2.1"}, Searches: []string{"my.dns"}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &three}}},
			want:      &runtimeapi.DNSConfig{Servers: []string{"192.0.2.1"}, Searches: []string{"my.dns"}, Options: []string{"ndots:3"}}},
		{name: "dnsConfig merges: duplicates dropped, the pod's option replaces the node's in place, an empty value is the name alone",
			policy: v1.DNSClusterFirst, host: host, node: cluster,
			dnsConfig: &v1.PodDNSConfig{Nameservers: []string{"10.96.0.10", "192.0.2.1"}, Searches: []string{"cluster.local", "extra"},
				Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &three}, {Name: "edns0", Value: &empty}, {Name: "rotate"}}},
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10", "192.0.2.1"},
				Searches: []string{"prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "lan", "corp", "extra"},
				Options:  []string{"ndots:3", "edns0", "rotate"}}},
		{name: "more than 3 nameservers are cut with DNSConfigForming",
			policy: v1.DNSDefault, host: host, node: cluster,
			dnsConfig: &v1.PodDNSConfig{Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}},
			want:      &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53", "192.0.2.1", "192.0.2.2"}, Searches: []string{"lan", "corp"}, Options: []string{"ndots:2", "edns0"}},
			wantEvents: []Event{{Reason: "DNSConfigForming",
				Message: "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 192.0.2.53 192.0.2.1 192.0.2.2"}}},
		{name: "more than 32 searches are cut, a search longer than 253 bytes dropped",
			policy: v1.DNSNone, node: cluster,
			dnsConfig: &v1.PodDNSConfig{Searches: append([]string{long}, many...)},
			want:      &runtimeapi.DNSConfig{Searches: many[:31]},
			wantEvents: []Event{{Reason: "DNSConfigForming",
				Message: "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: " + strings.Join(many[:31], " ")}}},
		{name: "a search line over 2048 bytes is cut from the end",
			policy: v1.DNSNone, node: cluster,
			dnsConfig: &v1.PodDNSConfig{Searches: wide},
			want:      &runtimeapi.DNSConfig{Searches: wide[:28]},
			wantEvents: []Event{{Reason: "DNSConfigForming",
				Message: "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: " + strings.Join(wide[:28], " ")}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := &v1.Pod{}
			pod.Name, pod.Namespace, pod.UID = "web", "prod", "uid-1"
			pod.Spec.DNSPolicy, pod.Spec.HostNetwork, pod.Spec.DNSConfig = tt.policy, tt.hostNet, tt.dnsConfig
			got, events := DNS(pod, tt.host, tt.node)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("config\n got %v\nwant %v", got, tt.want)
			}
			if !reflect.DeepEqual(events, tt.wantEvents) {
				t.Errorf("events\n got %v\nwant %v", events, tt.wantEvents)
			}
		})
	}
	if !reflect.DeepEqual(host, &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"lan", "corp"}, Options: []string{"ndots:2", "edns0"}}) {
		t.Errorf("the node's config was modified: %v", host)
	}
}

func TestParseResolvConfAsTheKubelet(t *testing.T) {
	got, err := ParseResolvConf(strings.NewReader("nameserver 192.0.2.1\nsearch old.example\n  # comment\nsearch a.example. . b\noptions ndots:2 edns0\noptions ndots:4\nnameserver 192.0.2.2\n"))
	want := &runtimeapi.DNSConfig{Servers: []string{"192.0.2.1", "192.0.2.2"}, Searches: []string{"a.example", "b"}, Options: []string{"ndots:4", "edns0"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	if _, err := ParseResolvConf(strings.NewReader("nameserver\n")); err == nil || !strings.Contains(err.Error(), "nameserver list is empty") {
		t.Errorf("a nameserver line without an address: %v", err)
	}
}
