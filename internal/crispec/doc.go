// Package crispec builds the CRI requests for a pod the way the kubelet
// does: the sandbox config, each container's config, its env (with the
// downward API fields that need no API server) and its mounts, with the
// labels and annotations the kubelet's tools read. Every function is pure:
// what the node prepares (volume host paths, subPath binds, the host's
// resolv.conf) comes in as arguments, so each rule is tested by a table,
// and a new pod field lands here with its test beside it.
package crispec

// Node is what the configs take from the node besides the pod.
type Node struct {
	// NodeName labels every sandbox and container (knode sees only its own).
	NodeName string
	// HostIP is status.hostIP, and status.podIP of a host-network pod.
	HostIP string
	// CgroupRoot is the parent of the pods' cgroups.
	CgroupRoot string
	// PodLogsDir holds the pods' log directories.
	PodLogsDir string
	// ClusterDomain is the DNS domain of the cluster (the kubelet's
	// clusterDomain), in a pod's FQDN <hostname>.<subdomain>.<ns>.svc.<domain>.
	ClusterDomain string
	// ClusterDNS are the cluster's DNS servers (the kubelet's clusterDNS),
	// the only nameservers of a ClusterFirst pod; none: such pods fall
	// back to the node's resolv.conf, as with the kubelet.
	ClusterDNS []string
	// CPUs and MemoryBytes stand in for a missing limit in the downward API.
	CPUs        int
	MemoryBytes int64
	// Security is what the containers' security contexts take from the node.
	Security Security
}
