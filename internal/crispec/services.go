package crispec

import (
	"net"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Service is what a pod's service environment takes from a Service: the
// node keeps only this of each, so the watch of every Service in the
// cluster costs little memory.
type Service struct {
	Namespace, Name string
	// ClusterIP is spec.clusterIP: "" or "None" (headless, ExternalName)
	// gives no variables.
	ClusterIP string
	Ports     []ServicePort
}

// ServicePort is what the variables take from a Service's port.
type ServicePort struct {
	Name     string
	Port     int32
	Protocol v1.Protocol
}

// masterServices are the default namespace's Services every pod gets
// variables for, whatever enableServiceLinks says.
var masterServices = map[string]bool{"kubernetes": true}

// ServiceEnv is the kubelet's getServiceEnvVarMap: the variables of the
// `kubernetes` Service of the default namespace always, and with
// enableServiceLinks those of every Service of the pod's namespace that
// has a cluster IP, each named as Docker links name them
// (envvars.FromServices). services may hold any namespaces' Services.
func ServiceEnv(services []Service, namespace string, enableServiceLinks bool) map[string]string {
	chosen := map[string]*Service{}
	for i := range services {
		s := &services[i]
		if s.ClusterIP == "" || s.ClusterIP == v1.ClusterIPNone || len(s.Ports) == 0 {
			continue
		}
		switch {
		case s.Namespace == "default" && masterServices[s.Name]:
			if _, ok := chosen[s.Name]; !ok {
				chosen[s.Name] = s
			}
		case s.Namespace == namespace && enableServiceLinks:
			chosen[s.Name] = s
		}
	}
	env := map[string]string{}
	for _, s := range chosen {
		prefix := envVarName(s.Name)
		env[prefix+"_SERVICE_HOST"] = s.ClusterIP
		portVar := prefix + "_SERVICE_PORT"
		env[portVar] = strconv.Itoa(int(s.Ports[0].Port))
		for i, p := range s.Ports {
			if p.Name != "" {
				env[portVar+"_"+envVarName(p.Name)] = strconv.Itoa(int(p.Port))
			}
			proto := string(p.Protocol)
			if proto == "" {
				proto = string(v1.ProtocolTCP)
			}
			url := strings.ToLower(proto) + "://" + net.JoinHostPort(s.ClusterIP, strconv.Itoa(int(p.Port)))
			if i == 0 {
				// Docker's special case for the first port.
				env[prefix+"_PORT"] = url
			}
			pp := prefix + "_PORT_" + strconv.Itoa(int(p.Port)) + "_" + strings.ToUpper(proto)
			env[pp] = url
			env[pp+"_PROTO"] = strings.ToLower(proto)
			env[pp+"_PORT"] = strconv.Itoa(int(p.Port))
			env[pp+"_ADDR"] = s.ClusterIP
		}
	}
	return env
}

// envVarName is the kubelet's: upper case, dashes as underscores.
func envVarName(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
}
