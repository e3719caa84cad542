package server

import (
	"encoding/json"
	"net/http"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// pods serves GET /pods: the managed pods with live status, as a v1.PodList.
func (s *Server) pods(w http.ResponseWriter, r *http.Request) {
	writePodList(w, s.cfg.Pods.Pods())
}

// runningPods serves GET /runningpods/: pods as the runtime sees them.
func (s *Server) runningPods(w http.ResponseWriter, r *http.Request) {
	writePodList(w, s.cfg.Pods.RunningPods())
}

func writePodList(w http.ResponseWriter, pods []*v1.Pod) {
	list := v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: make([]v1.Pod, 0, len(pods))}
	for _, p := range pods {
		list.Items = append(list.Items, *p)
	}
	writeJSON(w, http.StatusOK, list)
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
