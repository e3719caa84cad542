package crispec

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestServiceEnv(t *testing.T) {
	kubernetes := Service{Namespace: "default", Name: "kubernetes", ClusterIP: "10.96.0.1", Ports: []ServicePort{{Name: "https", Port: 443, Protocol: v1.ProtocolTCP}}}
	kubeVars := map[string]string{
		"KUBERNETES_SERVICE_HOST":       "10.96.0.1",
		"KUBERNETES_SERVICE_PORT":       "443",
		"KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT":               "tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_TCP":       "tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_TCP_PROTO": "tcp",
		"KUBERNETES_PORT_443_TCP_PORT":  "443",
		"KUBERNETES_PORT_443_TCP_ADDR":  "10.96.0.1",
	}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range kubeVars {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	dns := Service{Namespace: "prod", Name: "my-dns", ClusterIP: "10.96.0.10",
		Ports: []ServicePort{{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}, {Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP}}}
	dnsVars := map[string]string{
		"MY_DNS_SERVICE_HOST":         "10.96.0.10",
		"MY_DNS_SERVICE_PORT":         "53",
		"MY_DNS_SERVICE_PORT_DNS":     "53",
		"MY_DNS_SERVICE_PORT_DNS_TCP": "53",
		"MY_DNS_PORT":                 "udp://10.96.0.10:53",
		"MY_DNS_PORT_53_UDP":          "udp://10.96.0.10:53",
		"MY_DNS_PORT_53_UDP_PROTO":    "udp",
		"MY_DNS_PORT_53_UDP_PORT":     "53",
		"MY_DNS_PORT_53_UDP_ADDR":     "10.96.0.10",
		"MY_DNS_PORT_53_TCP":          "tcp://10.96.0.10:53",
		"MY_DNS_PORT_53_TCP_PROTO":    "tcp",
		"MY_DNS_PORT_53_TCP_PORT":     "53",
		"MY_DNS_PORT_53_TCP_ADDR":     "10.96.0.10",
	}
	v6 := Service{Namespace: "prod", Name: "web", ClusterIP: "fd00::7", Ports: []ServicePort{{Port: 80}}}
	for _, tt := range []struct {
		name     string
		services []Service
		ns       string
		links    bool
		want     map[string]string
	}{
		{name: "kubernetes alone", services: []Service{kubernetes}, ns: "prod", links: true, want: kubeVars},
		{name: "the pod's namespace's services, Docker link names, unnamed first port, protocol default TCP, IPv6 bracketed",
			services: []Service{kubernetes, dns, v6}, ns: "prod", links: true,
			want: with(func() map[string]string {
				m := map[string]string{"WEB_SERVICE_HOST": "fd00::7", "WEB_SERVICE_PORT": "80", "WEB_PORT": "tcp://[fd00::7]:80",
					"WEB_PORT_80_TCP": "tcp://[fd00::7]:80", "WEB_PORT_80_TCP_PROTO": "tcp", "WEB_PORT_80_TCP_PORT": "80", "WEB_PORT_80_TCP_ADDR": "fd00::7"}
				for k, v := range dnsVars {
					m[k] = v
				}
				return m
			}())},
		{name: "enableServiceLinks false: kubernetes only", services: []Service{kubernetes, dns}, ns: "prod", links: false, want: kubeVars},
		{name: "other namespaces' services are not linked", services: []Service{kubernetes, dns}, ns: "staging", links: true, want: kubeVars},
		{name: "headless, ExternalName (no IP) and portless services give nothing",
			services: []Service{kubernetes, {Namespace: "prod", Name: "headless", ClusterIP: "None", Ports: []ServicePort{{Port: 1}}},
				{Namespace: "prod", Name: "ext"}, {Namespace: "prod", Name: "bare", ClusterIP: "10.96.0.9"}},
			ns: "prod", links: true, want: kubeVars},
		{name: "no kubernetes Service: nothing", services: []Service{{Namespace: "other", Name: "kubernetes", ClusterIP: "10.96.0.2", Ports: []ServicePort{{Port: 1}}}},
			ns: "prod", links: false, want: map[string]string{}},
		{name: "a default-namespace pod: kubernetes once, its namespace's others with links",
			services: []Service{kubernetes, {Namespace: "default", Name: "api", ClusterIP: "10.96.0.3", Ports: []ServicePort{{Port: 8080, Protocol: v1.ProtocolSCTP}}}},
			ns:       "default", links: true,
			want: with(map[string]string{"API_SERVICE_HOST": "10.96.0.3", "API_SERVICE_PORT": "8080", "API_PORT": "sctp://10.96.0.3:8080",
				"API_PORT_8080_SCTP": "sctp://10.96.0.3:8080", "API_PORT_8080_SCTP_PROTO": "sctp", "API_PORT_8080_SCTP_PORT": "8080", "API_PORT_8080_SCTP_ADDR": "10.96.0.3"})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ServiceEnv(tt.services, tt.ns, tt.links)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}
