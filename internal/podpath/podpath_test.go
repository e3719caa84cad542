package podpath

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func pod(uid, ns, name, container, volume string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Namespace: ns, Name: name},
		Spec: v1.PodSpec{
			Containers: []v1.Container{{Name: container}},
			Volumes:    []v1.Volume{{Name: volume}},
		},
	}
}

func TestCheck(t *testing.T) {
	good := pod("5f0c5e1e-6f5a-4c1a-9d0e-2b8f7a1c3d4e", "default", "web-node1", "app", "data")
	if err := Check(good); err != nil {
		t.Fatalf("a valid pod: %v", err)
	}
	for _, tc := range []struct {
		pod  *v1.Pod
		want string
	}{
		{pod("../../etc", "default", "p", "c", "v"), "metadata.uid"},
		{pod("..", "default", "p", "c", "v"), "metadata.uid"},
		{pod(".", "default", "p", "c", "v"), "metadata.uid"},
		{pod("a/b", "default", "p", "c", "v"), "metadata.uid"},
		{pod("", "default", "p", "c", "v"), "metadata.uid"},
		{pod(strings.Repeat("a", MaxUIDLength+1), "default", "p", "c", "v"), "metadata.uid"},
		{pod("u1", "../x", "p", "c", "v"), "metadata.namespace"},
		{pod("u1", "a_b", "p", "c", "v"), "metadata.namespace"},
		{pod("u1", "default", "../p", "c", "v"), "metadata.name"},
		{pod("u1", "default", "p_q", "c", "v"), "metadata.name"},
		{pod("u1", "default", "p", "../c", "v"), "container name"},
		{pod("u1", "default", "p", "c", "../v"), "volume name"},
	} {
		err := Check(tc.pod)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(uid=%q ns=%q name=%q) = %v; want an error about %s", tc.pod.UID, tc.pod.Namespace, tc.pod.Name, err, tc.want)
		}
	}
}
