package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// eventServer keeps the events written to it, by name.
type eventServer struct {
	mu      sync.Mutex
	events  map[string]*v1.Event
	posts   int
	patches int
}

func (s *eventServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	const prefix = "/api/v1/namespaces/default/events"
	switch {
	case r.Method == "POST" && r.URL.Path == prefix:
		ev := &v1.Event{}
		if err := json.Unmarshal(body, ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.posts++
		s.events[ev.Name] = ev
		json.NewEncoder(w).Encode(ev)
	case r.Method == "PATCH" && strings.HasPrefix(r.URL.Path, prefix+"/"):
		ev, ok := s.events[strings.TrimPrefix(r.URL.Path, prefix+"/")]
		if !ok || r.Header.Get("Content-Type") != "application/merge-patch+json" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(metav1.Status{Status: metav1.StatusFailure, Code: 404, Reason: metav1.StatusReasonNotFound})
			return
		}
		s.patches++
		if err := json.Unmarshal(body, ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(ev)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func TestEvents(t *testing.T) {
	fake := &eventServer{events: map[string]*v1.Event{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	n, err := New(Config{Kubeconfig: testKubeconfig(t, srv.URL), Facts: Facts{NodeName: "n1"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := n.NewEvents()
	clock := time.Unix(1_800_000_000, 0)
	e.now = func() time.Time { return clock }
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"}}
	drain := func() {
		for {
			select {
			case ev := <-e.queue:
				e.publish(context.Background(), ev)
			default:
				return
			}
		}
	}

	e.Event(pod, v1.EventTypeNormal, "Started", "Started container app")
	drain()
	if fake.posts != 1 || len(fake.events) != 1 {
		t.Fatalf("first event: %d posts", fake.posts)
	}
	for _, ev := range fake.events {
		if ev.Source.Component != "kubelet" || ev.Source.Host != "n1" || ev.InvolvedObject.UID != "uid-1" ||
			ev.InvolvedObject.Kind != "Pod" || ev.Count != 1 || ev.Type != "Normal" {
			t.Fatalf("event: %+v", ev)
		}
	}

	// The same event again within 10 minutes: the count goes up, no new object.
	clock = clock.Add(time.Minute)
	e.Event(pod, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container app")
	clock = clock.Add(time.Minute)
	e.Event(pod, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container app")
	drain()
	if fake.posts != 2 || fake.patches != 1 {
		t.Fatalf("a repeat: %d posts, %d patches; want 2 and 1", fake.posts, fake.patches)
	}
	for _, ev := range fake.events {
		if ev.Reason == "BackOff" && (ev.Count != 2 || !ev.LastTimestamp.Time.Equal(clock)) {
			t.Fatalf("repeated event: count %d, last %s", ev.Count, ev.LastTimestamp)
		}
	}

	// A pod that makes noise is cut off after 25 events, then gets one per 5 minutes.
	for i := 0; i < 40; i++ {
		e.Event(pod, v1.EventTypeWarning, "Failed", fmt.Sprintf("Error: attempt %d", i))
	}
	drain()
	if written := fake.posts + fake.patches; written != 25 {
		t.Fatalf("a noisy pod got %d writes, want the burst of 25", written)
	}
	clock = clock.Add(5 * time.Minute)
	e.Event(pod, v1.EventTypeWarning, "Failed", "Error: later")
	e.Event(pod, v1.EventTypeWarning, "Failed", "Error: later still")
	drain()
	if written := fake.posts + fake.patches; written != 26 {
		t.Fatalf("after 5 minutes: %d writes, want 26", written)
	}
}

func TestNodeConditionEvents(t *testing.T) {
	e := &Events{host: "n1", queue: make(chan *v1.Event, 10), log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	n := &Node{facts: Facts{NodeName: "n1"}, events: e}
	cond := func(t v1.NodeConditionType, s v1.ConditionStatus) v1.NodeCondition {
		return v1.NodeCondition{Type: t, Status: s}
	}
	first := v1.NodeStatus{Conditions: []v1.NodeCondition{cond(v1.NodeMemoryPressure, v1.ConditionFalse), cond(v1.NodeDiskPressure, v1.ConditionUnknown),
		cond(v1.NodeReady, v1.ConditionTrue)}}
	n.conditionEvents(v1.NodeStatus{}, first)
	later := v1.NodeStatus{Conditions: []v1.NodeCondition{cond(v1.NodeMemoryPressure, v1.ConditionFalse), cond(v1.NodeDiskPressure, v1.ConditionUnknown),
		cond(v1.NodeReady, v1.ConditionFalse)}}
	n.conditionEvents(first, later)
	var got []string
	for len(e.queue) > 0 {
		ev := <-e.queue
		if ev.InvolvedObject.Kind != "Node" || ev.InvolvedObject.UID != "n1" || ev.Namespace != "default" {
			t.Fatalf("event about %+v in %q", ev.InvolvedObject, ev.Namespace)
		}
		got = append(got, ev.Reason+": "+ev.Message)
	}
	want := []string{"NodeHasSufficientMemory: Node n1 status is now: NodeHasSufficientMemory", "NodeReady: Node n1 status is now: NodeReady",
		"NodeNotReady: Node n1 status is now: NodeNotReady"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events %q, want %q", got, want)
	}
}
