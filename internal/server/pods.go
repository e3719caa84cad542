package server

import (
	"encoding/json"
	"net/http"
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// pods serves GET /pods: the managed pods with live status, as a v1.PodList.
// The encoded list is reused until a pod or status changes, so monitoring
// agents polling it cost one copy of the bytes.
func (s *Server) pods(w http.ResponseWriter, r *http.Request) {
	data, err := s.podsJSON.get(s.cfg.Pods)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

type podsCache struct {
	mu      sync.Mutex
	version uint64
	data    []byte
}

func (c *podsCache) get(p Pods) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := p.PodsVersion()
	if c.data != nil && v == c.version {
		return c.data, nil
	}
	data, err := json.Marshal(podList(p.Pods()))
	if err != nil {
		return nil, err
	}
	c.version, c.data = v, data
	return data, nil
}

// runningPods serves GET /runningpods/: pods as the runtime sees them.
func (s *Server) runningPods(w http.ResponseWriter, r *http.Request) {
	writePodList(w, s.cfg.Pods.RunningPods())
}

func writePodList(w http.ResponseWriter, pods []*v1.Pod) {
	writeJSON(w, http.StatusOK, podList(pods))
}

func podList(pods []*v1.Pod) v1.PodList {
	list := v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: make([]v1.Pod, 0, len(pods))}
	for _, p := range pods {
		list.Items = append(list.Items, *p)
	}
	return list
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(data)
}
