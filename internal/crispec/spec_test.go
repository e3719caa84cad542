package crispec

import (
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var node = Node{NodeName: "n1", HostIP: "192.0.2.10", CgroupRoot: "/", PodLogsDir: "/var/log/pods", CPUs: 4, MemoryBytes: 8 << 30}

func basePod() *v1.Pod {
	grace := int64(7)
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "prod", UID: "uid-1",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"}},
		Spec: v1.PodSpec{
			NodeName:                      "n1",
			TerminationGracePeriodSeconds: &grace,
			Containers:                    []v1.Container{{Name: "app", Image: "img:1"}},
		},
	}
}

func TestSandbox(t *testing.T) {
	host := &runtimeapi.DNSConfig{Servers: []string{"10.0.0.1"}, Searches: []string{"lan"}, Options: []string{"ndots:2"}}
	two := "2"
	for _, tt := range []struct {
		name  string
		edit  func(*v1.Pod)
		check func(*testing.T, *runtimeapi.PodSandboxConfig)
	}{
		{"metadata, labels, annotations, log directory and cgroup", func(*v1.Pod) {}, func(t *testing.T, c *runtimeapi.PodSandboxConfig) {
			want := map[string]string{"app": "web", LabelPodName: "web-n1", LabelPodNamespace: "prod", LabelPodUID: "uid-1",
				LabelManagedBy: ManagedByValue, LabelNode: "n1"}
			if !reflect.DeepEqual(c.Labels, want) {
				t.Errorf("labels %v, want %v", c.Labels, want)
			}
			if c.Annotations["a"] != "b" || c.Metadata.Attempt != 3 || c.Metadata.Uid != "uid-1" {
				t.Errorf("annotations %v metadata %v", c.Annotations, c.Metadata)
			}
			if c.LogDirectory != "/var/log/pods/prod_web-n1_uid-1" || c.Linux.CgroupParent != "/kubepods/besteffort/poduid-1" || c.Hostname != "web-n1" {
				t.Errorf("log dir %q cgroup %q hostname %q", c.LogDirectory, c.Linux.CgroupParent, c.Hostname)
			}
			ns := c.Linux.SecurityContext.NamespaceOptions
			if ns.Network != runtimeapi.NamespaceMode_POD || ns.Pid != runtimeapi.NamespaceMode_CONTAINER || ns.Ipc != runtimeapi.NamespaceMode_POD {
				t.Errorf("namespaces %v", ns)
			}
		}},
		{"host network: no host name, node network namespace", func(p *v1.Pod) { p.Spec.HostNetwork = true }, func(t *testing.T, c *runtimeapi.PodSandboxConfig) {
			if c.Hostname != "" || c.Linux.SecurityContext.NamespaceOptions.Network != runtimeapi.NamespaceMode_NODE {
				t.Errorf("hostname %q namespaces %v", c.Hostname, c.Linux.SecurityContext.NamespaceOptions)
			}
		}},
		{"a long pod name is cut to 63 bytes without a trailing dash", func(p *v1.Pod) { p.Name = strings.Repeat("a", 62) + "-b" }, func(t *testing.T, c *runtimeapi.PodSandboxConfig) {
			if c.Hostname != strings.Repeat("a", 62) {
				t.Errorf("hostname %q", c.Hostname)
			}
		}},
		{"shared process namespace, host IPC, privileged container", func(p *v1.Pod) {
			share, priv := true, true
			p.Spec.ShareProcessNamespace, p.Spec.HostIPC = &share, true
			p.Spec.InitContainers = []v1.Container{{Name: "i", SecurityContext: &v1.SecurityContext{Privileged: &priv}}}
		}, func(t *testing.T, c *runtimeapi.PodSandboxConfig) {
			sc := c.Linux.SecurityContext
			if sc.NamespaceOptions.Pid != runtimeapi.NamespaceMode_POD || sc.NamespaceOptions.Ipc != runtimeapi.NamespaceMode_NODE || !sc.Privileged {
				t.Errorf("security context %v", sc)
			}
		}},
		{"host ports become port mappings", func(p *v1.Pod) {
			p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: v1.ProtocolUDP, HostIP: "127.0.0.1"}, {ContainerPort: 81}}
		}, func(t *testing.T, c *runtimeapi.PodSandboxConfig) {
			want := []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 80, HostPort: 8080, HostIp: "127.0.0.1"}}
			if !reflect.DeepEqual(c.PortMappings, want) {
				t.Errorf("port mappings %v", c.PortMappings)
			}
		}},
		{"pod security context and sysctls", func(p *v1.Pod) {
			uid, gid := int64(1000), int64(2000)
			p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &gid, SupplementalGroups: []int64{3},
				Sysctls: []v1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}}
		}, func(t *testing.T, c *runtimeapi.PodSandboxConfig) {
			sc := c.Linux.SecurityContext
			if sc.RunAsUser.GetValue() != 1000 || sc.RunAsGroup.GetValue() != 2000 || !reflect.DeepEqual(sc.SupplementalGroups, []int64{3}) ||
				c.Linux.Sysctls["net.ipv4.ip_unprivileged_port_start"] != "0" {
				t.Errorf("security context %v sysctls %v", sc, c.Linux.Sysctls)
			}
		}},
		{"DNS: the host's, then the pod's", func(p *v1.Pod) {
			p.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "rotate"}}}
		}, func(t *testing.T, c *runtimeapi.PodSandboxConfig) {
			want := &runtimeapi.DNSConfig{Servers: []string{"10.0.0.1", "1.1.1.1"}, Searches: []string{"lan"}, Options: []string{"ndots:2", "rotate"}}
			if !reflect.DeepEqual(c.DnsConfig, want) {
				t.Errorf("dns %v, want %v", c.DnsConfig, want)
			}
		}},
		{"DNS policy None: only the pod's", func(p *v1.Pod) {
			p.Spec.DNSPolicy = v1.DNSNone
			p.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}}
		}, func(t *testing.T, c *runtimeapi.PodSandboxConfig) {
			if !reflect.DeepEqual(c.DnsConfig, &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1"}}) {
				t.Errorf("dns %v", c.DnsConfig)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			tt.edit(pod)
			cfg, err := Sandbox(pod, 3, node, host)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
	if len(host.Servers) != 1 || len(host.Options) != 1 {
		t.Errorf("the host's DNS config was modified: %v", host)
	}
}

func TestParseResolvConf(t *testing.T) {
	got, err := ParseResolvConf(strings.NewReader("# c\nnameserver 10.0.0.1\nsearch a b\noptions ndots:5 edns0\n"))
	want := &runtimeapi.DNSConfig{Servers: []string{"10.0.0.1"}, Searches: []string{"a", "b"}, Options: []string{"ndots:5", "edns0"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
}

func TestContainer(t *testing.T) {
	for _, tt := range []struct {
		name  string
		edit  func(*v1.Pod, *ContainerInput)
		check func(*testing.T, *runtimeapi.ContainerConfig)
	}{
		{"labels, annotations, log path, attempt", func(*v1.Pod, *ContainerInput) {}, func(t *testing.T, c *runtimeapi.ContainerConfig) {
			want := map[string]string{LabelContainerName: "app", LabelPodName: "web-n1", LabelPodNamespace: "prod", LabelPodUID: "uid-1",
				LabelManagedBy: ManagedByValue, LabelNode: "n1"}
			if !reflect.DeepEqual(c.Labels, want) {
				t.Errorf("labels %v", c.Labels)
			}
			if c.Annotations[AnnotationRestartCount] != "2" || c.Annotations[AnnotationPodTerminationGrace] != "7" ||
				c.Annotations[AnnotationContainerHash] == "" || c.Annotations[AnnotationInit] != "" {
				t.Errorf("annotations %v", c.Annotations)
			}
			if c.LogPath != "app/2.log" || c.Metadata.Attempt != 2 {
				t.Errorf("log path %q metadata %v image %v", c.LogPath, c.Metadata, c.Image)
			}
		}},
		{"init container and ports", func(p *v1.Pod, in *ContainerInput) {
			in.IsInit = true
			p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80}}
		}, func(t *testing.T, c *runtimeapi.ContainerConfig) {
			if c.Annotations[AnnotationInit] != "true" || c.Annotations[AnnotationContainerPorts] != `[{"containerPort":80}]` {
				t.Errorf("annotations %v", c.Annotations)
			}
		}},
		{"command and args expanded from the env", func(p *v1.Pod, in *ContainerInput) {
			p.Spec.Containers[0].Command = []string{"echo", "$(A)"}
			p.Spec.Containers[0].Args = []string{"$(B)", "$$(A)"}
			in.Envs = []*runtimeapi.KeyValue{{Key: "A", Value: []byte("1")}}
		}, func(t *testing.T, c *runtimeapi.ContainerConfig) {
			if !reflect.DeepEqual(c.Command, []string{"echo", "1"}) || !reflect.DeepEqual(c.Args, []string{"$(B)", "$(A)"}) {
				t.Errorf("command %q args %q", c.Command, c.Args)
			}
		}},
		{"resources", func(p *v1.Pod, _ *ContainerInput) {
			p.Spec.Containers[0].Resources = v1.ResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m")},
				Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("64Mi")}}
		}, func(t *testing.T, c *runtimeapi.ContainerConfig) {
			r := c.Linux.Resources
			if r.CpuShares != 256 || r.CpuPeriod != 100000 || r.CpuQuota != 50000 || r.MemoryLimitInBytes != 64<<20 {
				t.Errorf("resources %v", r)
			}
		}},
		{"no resources: the minimum shares", func(*v1.Pod, *ContainerInput) {}, func(t *testing.T, c *runtimeapi.ContainerConfig) {
			if r := c.Linux.Resources; r.CpuShares != 2 || r.CpuQuota != 0 || r.MemoryLimitInBytes != 0 {
				t.Errorf("resources %v", r)
			}
		}},
		{"container security context over the pod's", func(p *v1.Pod, _ *ContainerInput) {
			podUser, user, f := int64(1), int64(2), false
			p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: &podUser}
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{RunAsUser: &user, AllowPrivilegeEscalation: &f, ReadOnlyRootFilesystem: new(true),
				Capabilities: &v1.Capabilities{Add: []v1.Capability{"NET_ADMIN"}, Drop: []v1.Capability{"ALL"}}}
		}, func(t *testing.T, c *runtimeapi.ContainerConfig) {
			sc := c.Linux.SecurityContext
			if sc.RunAsUser.GetValue() != 2 || !sc.NoNewPrivs || !sc.ReadonlyRootfs ||
				!reflect.DeepEqual(sc.Capabilities.AddCapabilities, []string{"NET_ADMIN"}) || !reflect.DeepEqual(sc.Capabilities.DropCapabilities, []string{"ALL"}) {
				t.Errorf("security context %v", sc)
			}
		}},
		{"created from the resolved image ID, the spec's name kept as the user's", func(_ *v1.Pod, in *ContainerInput) {
			in.ImageRef = "sha256:0123abcd"
		}, func(t *testing.T, c *runtimeapi.ContainerConfig) {
			if c.Image.Image != "sha256:0123abcd" || c.Image.UserSpecifiedImage != "img:1" {
				t.Errorf("image %v, want sha256:0123abcd specified as img:1", c.Image)
			}
		}},
		{"env and mounts are passed through", func(_ *v1.Pod, in *ContainerInput) {
			in.Envs = []*runtimeapi.KeyValue{{Key: "K", Value: []byte("v")}}
			in.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/h"}}
		}, func(t *testing.T, c *runtimeapi.ContainerConfig) {
			if len(c.Envs) != 1 || len(c.Mounts) != 1 || c.Mounts[0].HostPath != "/h" {
				t.Errorf("envs %v mounts %v", c.Envs, c.Mounts)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			in := ContainerInput{RestartCount: 2}
			tt.edit(pod, &in)
			tt.check(t, Container(pod, &pod.Spec.Containers[0], in, node))
		})
	}
}

func TestEnv(t *testing.T) {
	field := func(path string) *v1.EnvVarSource {
		return &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: path}}
	}
	res := func(r, divisor string) *v1.EnvVarSource {
		s := &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: r}}
		if divisor != "" {
			s.ResourceFieldRef.Divisor = resource.MustParse(divisor)
		}
		return s
	}
	for _, tt := range []struct {
		name     string
		hostNet  bool
		env      []v1.EnvVar
		want     map[string]string
		wantErr  string
		wantKeys []string
		envFrom  []v1.EnvFromSource
		src      EnvSources
		edit     func(*v1.Pod)
	}{
		{name: "literal values with $(VAR) of earlier entries", env: []v1.EnvVar{{Name: "A", Value: "x"}, {Name: "B", Value: "$(A)-$(C)"}},
			want: map[string]string{"A": "x", "B": "x-$(C)"}},
		{name: "a later duplicate wins in place", env: []v1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "b"}, {Name: "A", Value: "2"}},
			want: map[string]string{"A": "2", "B": "b"}, wantKeys: []string{"A", "B"}},
		{name: "downward API fields", env: []v1.EnvVar{{Name: "N", ValueFrom: field("metadata.name")}, {Name: "NS", ValueFrom: field("metadata.namespace")},
			{Name: "U", ValueFrom: field("metadata.uid")}, {Name: "L", ValueFrom: field("metadata.labels['app']")},
			{Name: "AN", ValueFrom: field("metadata.annotations['a']")}, {Name: "H", ValueFrom: field("status.hostIP")},
			{Name: "P", ValueFrom: field("status.podIP")}, {Name: "NODE", ValueFrom: field("spec.nodeName")}},
			want: map[string]string{"N": "web-n1", "NS": "prod", "U": "uid-1", "L": "web", "AN": "b", "H": "192.0.2.10", "P": "10.1.0.5", "NODE": "n1"}},
		{name: "a host-network pod's IP is the node's", hostNet: true, env: []v1.EnvVar{{Name: "P", ValueFrom: field("status.podIP")}},
			want: map[string]string{"P": "192.0.2.10"}},
		{name: "resources, with the node's capacity for a missing limit", env: []v1.EnvVar{{Name: "C", ValueFrom: res("limits.cpu", "")},
			{Name: "M", ValueFrom: res("limits.memory", "1Mi")}, {Name: "R", ValueFrom: res("requests.cpu", "1m")}},
			want: map[string]string{"C": "4", "M": "8192", "R": "0"}},
		{name: "every fieldRef the kubelet resolves", env: []v1.EnvVar{{Name: "SA", ValueFrom: field("spec.serviceAccountName")},
			{Name: "HS", ValueFrom: field("status.hostIPs")}, {Name: "PS", ValueFrom: field("status.podIPs")},
			{Name: "NL", ValueFrom: field("metadata.labels['none']")}, {Name: "V1", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}},
			want: map[string]string{"SA": "robot", "HS": "192.0.2.10", "PS": "10.1.0.5", "NL": "", "V1": "web-n1"}},
		{name: "a fieldRef of another API version", env: []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v2", FieldPath: "metadata.name"}}}},
			wantErr: "unsupported pod version: v2"},
		{name: "an invalid label key", env: []v1.EnvVar{{Name: "X", ValueFrom: field("metadata.labels['a b']")}},
			wantErr: "invalid key subscript in metadata.labels['a b']: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"},
		{name: "a subscript on a field without one", env: []v1.EnvVar{{Name: "X", ValueFrom: field("spec.nodeName['x']")}},
			wantErr: "field label does not support subscript: spec.nodeName['x']"},
		{name: "resources: requests, ephemeral storage, hugepages, a zero limit is the node's, divisors round up", env: []v1.EnvVar{
			{Name: "RM", ValueFrom: res("requests.memory", "1Mi")}, {Name: "ES", ValueFrom: res("limits.ephemeral-storage", "1Gi")},
			{Name: "RES", ValueFrom: res("requests.ephemeral-storage", "")}, {Name: "HP", ValueFrom: res("limits.hugepages-2Mi", "2Mi")},
			{Name: "RHP", ValueFrom: res("requests.hugepages-2Mi", "")}, {Name: "ZM", ValueFrom: res("limits.memory", "1Gi")},
			{Name: "RC", ValueFrom: res("requests.cpu", "")}},
			edit: func(p *v1.Pod) {
				p.Spec.Containers[0].Resources = v1.ResourceRequirements{
					Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64.5Mi"), v1.ResourceCPU: resource.MustParse("500m"), "hugepages-2Mi": resource.MustParse("6Mi")},
					Limits:   v1.ResourceList{v1.ResourceEphemeralStorage: resource.MustParse("1.5Gi"), "hugepages-2Mi": resource.MustParse("6Mi"), v1.ResourceMemory: resource.MustParse("0")}}
			},
			want: map[string]string{"RM": "65", "ES": "2", "RES": "0", "HP": "3", "RHP": "6291456", "ZM": "8", "RC": "1"}},
		{name: "an unsupported resource", env: []v1.EnvVar{{Name: "X", ValueFrom: res("limits.nvidia.com/gpu", "")}},
			wantErr: "unsupported container resource : limits.nvidia.com/gpu"},
		{name: "resources of a named container; app containers get the node's limits, init containers not", env: []v1.EnvVar{
			{Name: "APP", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "side", Resource: "limits.cpu"}}},
			{Name: "INIT", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "init", Resource: "limits.cpu"}}}},
			edit: func(p *v1.Pod) {
				p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "side"})
				p.Spec.InitContainers = []v1.Container{{Name: "init"}}
			},
			want: map[string]string{"APP": "4", "INIT": "0"}},
		{name: "a named container that does not exist", env: []v1.EnvVar{
			{Name: "X", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "nope", Resource: "limits.cpu"}}}},
			wantErr: "container nope not found"},
		{name: "service variables: the container's own win, they expand in its values, the rest follow sorted",
			src:      EnvSources{Services: map[string]string{"DB_SERVICE_HOST": "10.96.0.7", "DB_SERVICE_PORT": "5432", "KUBERNETES_SERVICE_HOST": "10.96.0.1"}},
			env:      []v1.EnvVar{{Name: "DB_SERVICE_PORT", Value: "6000"}, {Name: "URL", Value: "pg://$(DB_SERVICE_HOST):$(DB_SERVICE_PORT)"}},
			want:     map[string]string{"DB_SERVICE_PORT": "6000", "URL": "pg://10.96.0.7:6000", "DB_SERVICE_HOST": "10.96.0.7", "KUBERNETES_SERVICE_HOST": "10.96.0.1"},
			wantKeys: []string{"DB_SERVICE_PORT", "URL", "DB_SERVICE_HOST", "KUBERNETES_SERVICE_HOST"}},
		{name: "envFrom wins over a service variable too", envFrom: []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{}}},
			src:  EnvSources{From: []map[string]string{{"DB_SERVICE_HOST": "mine"}}, Services: map[string]string{"DB_SERVICE_HOST": "10.96.0.7"}},
			want: map[string]string{"DB_SERVICE_HOST": "mine"}},
		{name: "unsupported fieldRef", env: []v1.EnvVar{{Name: "X", ValueFrom: field("status.phase")}}, wantErr: `unsupported fieldPath: status.phase`},
		{name: "fileKeyRef is refused", env: []v1.EnvVar{{Name: "F", ValueFrom: &v1.EnvVarSource{FileKeyRef: &v1.FileKeySelector{}}}},
			wantErr: "env F: fileKeyRef (the EnvFiles feature) is not supported by knode"},
		{name: "envFrom with a prefix, a later source winning, keys sorted", envFrom: []v1.EnvFromSource{
			{Prefix: "CM_", ConfigMapRef: &v1.ConfigMapEnvSource{}}, {SecretRef: &v1.SecretEnvSource{}}, {Prefix: "CM_", ConfigMapRef: &v1.ConfigMapEnvSource{}}},
			src:  EnvSources{From: []map[string]string{{"b": "1", "a": "2"}, {"PASS": "s"}, {"b": "3"}}},
			want: map[string]string{"CM_a": "2", "CM_b": "3", "PASS": "s"}, wantKeys: []string{"CM_a", "CM_b", "PASS"}},
		{name: "an optional missing envFrom source adds nothing", envFrom: []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{}}, {SecretRef: &v1.SecretEnvSource{}}},
			src:  EnvSources{From: []map[string]string{nil, {"S": "x"}}},
			want: map[string]string{"S": "x"}},
		{name: "keys that are no C identifiers are taken as the kubelet takes them", envFrom: []v1.EnvFromSource{{Prefix: "p.", ConfigMapRef: &v1.ConfigMapEnvSource{}}},
			src:  EnvSources{From: []map[string]string{{"1x": "a", "k-2": "b"}}},
			want: map[string]string{"p.1x": "a", "p.k-2": "b"}},
		{name: "env overrides envFrom in place and expands its variables", envFrom: []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{}}},
			src:  EnvSources{From: []map[string]string{{"A": "from", "B": "b"}}},
			env:  []v1.EnvVar{{Name: "A", Value: "env-$(B)"}, {Name: "C", Value: "$(A)/$(B)/$(D)"}},
			want: map[string]string{"A": "env-b", "B": "b", "C": "env-b/b/$(D)"}, wantKeys: []string{"A", "B", "C"}},
		{name: "key refs resolved; an unresolved (optional missing) one is left out", envFrom: []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{}}},
			src: EnvSources{From: []map[string]string{{"K": "from"}}, Refs: map[int]string{0: "cm", 2: "sec"}},
			env: []v1.EnvVar{{Name: "K", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{Key: "k"}}},
				{Name: "GONE", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{Key: "x"}}},
				{Name: "S", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{Key: "s"}}},
				{Name: "E", Value: "$(K)+$(S)+$(GONE)"}},
			want: map[string]string{"K": "cm", "S": "sec", "E": "cm+sec+$(GONE)"}},
		{name: "a literal value wins over valueFrom", env: []v1.EnvVar{{Name: "V", Value: "lit", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{}}}},
			src: EnvSources{Refs: map[int]string{0: "ref"}}, want: map[string]string{"V": "lit"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			pod.Spec.HostNetwork = tt.hostNet
			pod.Spec.ServiceAccountName = "robot"
			if tt.edit != nil {
				tt.edit(pod)
			}
			pod.Spec.Containers[0].Env = tt.env
			pod.Spec.Containers[0].EnvFrom = tt.envFrom
			got, err := Env(pod, &pod.Spec.Containers[0], "10.1.0.5", node, tt.src)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			var keys []string
			for _, kv := range got {
				m[kv.Key] = string(kv.Value)
				keys = append(keys, kv.Key)
			}
			if !reflect.DeepEqual(m, tt.want) {
				t.Errorf("env %v, want %v", m, tt.want)
			}
			if tt.wantKeys != nil && !reflect.DeepEqual(keys, tt.wantKeys) {
				t.Errorf("keys %v, want %v", keys, tt.wantKeys)
			}
		})
	}
}

func TestMount(t *testing.T) {
	rro := func(m v1.RecursiveReadOnlyMode) *v1.RecursiveReadOnlyMode { return &m }
	prop := func(p v1.MountPropagationMode) *v1.MountPropagationMode { return &p }
	emptyDir := &v1.Volume{Name: "v", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}
	secret := &v1.Volume{Name: "v", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}}
	for _, tt := range []struct {
		name    string
		vm      v1.VolumeMount
		vol     *v1.Volume
		want    *runtimeapi.Mount
		wantErr string
	}{
		{name: "writable emptyDir", vm: v1.VolumeMount{Name: "v", MountPath: "/d"}, vol: emptyDir,
			want: &runtimeapi.Mount{ContainerPath: "/d", HostPath: "/h"}},
		{name: "an API-object volume is read-only whatever the mount says", vm: v1.VolumeMount{Name: "v", MountPath: "/d"}, vol: secret,
			want: &runtimeapi.Mount{ContainerPath: "/d", HostPath: "/h", Readonly: true}},
		{name: "propagation", vm: v1.VolumeMount{Name: "v", MountPath: "/d", MountPropagation: prop(v1.MountPropagationBidirectional)}, vol: emptyDir,
			want: &runtimeapi.Mount{ContainerPath: "/d", HostPath: "/h", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}},
		{name: "recursive read-only", vm: v1.VolumeMount{Name: "v", MountPath: "/d", ReadOnly: true, RecursiveReadOnly: rro(v1.RecursiveReadOnlyEnabled)}, vol: emptyDir,
			want: &runtimeapi.Mount{ContainerPath: "/d", HostPath: "/h", Readonly: true, RecursiveReadOnly: true}},
		{name: "recursive read-only if possible: read-only", vm: v1.VolumeMount{Name: "v", MountPath: "/d", ReadOnly: true, RecursiveReadOnly: rro(v1.RecursiveReadOnlyIfPossible)}, vol: emptyDir,
			want: &runtimeapi.Mount{ContainerPath: "/d", HostPath: "/h", Readonly: true}},
		{name: "recursive read-only needs readOnly", vm: v1.VolumeMount{Name: "v", RecursiveReadOnly: rro(v1.RecursiveReadOnlyEnabled)}, vol: emptyDir,
			wantErr: `volumeMount "v": recursiveReadOnly Enabled needs readOnly: true`},
		{name: "bindMountOptions are refused", vm: v1.VolumeMount{Name: "v", BindMountOptions: []string{"nosymfollow"}}, vol: emptyDir,
			wantErr: `volumeMount "v": bindMountOptions are not supported by knode`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Mount(&tt.vm, tt.vol, "/h")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// A request beyond the kernel's range (above 256 CPUs, or so large it would
// wrap when converted) gives the kubelet's maximum shares, not a value the
// runtime refuses or a negative one.
func TestCPUSharesClampedToTheKernelRange(t *testing.T) {
	for _, req := range []string{"300", "9223372036854775807", "1m"} {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
		c := v1.Container{Name: "c", Image: "img", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(req)}}}
		pod.Spec.Containers = []v1.Container{c}
		got := linuxResources(pod, &pod.Spec.Containers[0], 1<<30).CpuShares
		want := int64(262144)
		if req == "1m" {
			want = 2
		}
		if got != want {
			t.Errorf("cpu request %s: shares %d, want %d", req, got, want)
		}
	}
}
