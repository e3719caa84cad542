package nodeinfo

import (
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestAllocatable(t *testing.T) {
	capacity := v1.ResourceList{
		v1.ResourceCPU:              resource.MustParse("4"),
		v1.ResourceMemory:           resource.MustParse("16Gi"),
		v1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
		v1.ResourcePods:             resource.MustParse("110"),
		"hugepages-2Mi":             resource.MustParse("1Gi"),
	}
	kube, _ := ParseReserved(map[string]string{"cpu": "500m", "memory": "1Gi"})
	system, _ := ParseReserved(map[string]string{"cpu": "4", "ephemeral-storage": "10Gi", "hugepages-2Mi": "512Mi"})
	eviction := v1.ResourceList{v1.ResourceMemory: resource.MustParse("100Mi"), v1.ResourceEphemeralStorage: resource.MustParse("10Gi")}
	got := Allocatable(capacity, kube, system, eviction)
	for name, want := range map[v1.ResourceName]string{
		v1.ResourceCPU:              "0", // never below zero
		v1.ResourceMemory:           "14236Mi",
		v1.ResourceEphemeralStorage: "80Gi",
		v1.ResourcePods:             "110",
		"hugepages-2Mi":             "512Mi",
	} {
		q := got[name]
		if q.Cmp(resource.MustParse(want)) != 0 {
			t.Errorf("%s = %s, want %s", name, q.String(), want)
		}
	}
	if _, err := ParseReserved(map[string]string{"memory": "lots"}); err == nil {
		t.Error("a bad quantity was accepted")
	}
}

func TestHugePages(t *testing.T) {
	dir := t.TempDir()
	for size, n := range map[string]string{"hugepages-2048kB": "5\n", "hugepages-1048576kB": "0\n"} {
		if err := os.MkdirAll(filepath.Join(dir, size), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, size, "nr_hugepages"), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := HugePages(dir)
	two, one := got["hugepages-2Mi"], got["hugepages-1Gi"]
	if len(got) != 2 || two.Value() != 10<<20 || !one.IsZero() {
		t.Errorf("got %v", got)
	}
}
