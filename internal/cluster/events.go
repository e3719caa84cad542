package cluster

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
)

// Events publishes pod events to the API server through client-go's event
// broadcaster, which aggregates repeats and rate-limits a noisy pod, as in
// the kubelet. The source is the kubelet's ("kubelet" on this node), so
// `kubectl describe`, event exporters and alerts that filter on it keep
// working.
type Events struct {
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
}

// NewEvents starts publishing; Stop ends it.
func (n *Node) NewEvents() *Events {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(eventSink{n.api})
	return &Events{broadcaster: b,
		recorder: b.NewRecorder(n.api.scheme, v1.EventSource{Component: "kubelet", Host: n.facts.NodeName})}
}

// Event publishes one event about pod.
func (e *Events) Event(pod *v1.Pod, eventType, reason, message string) {
	e.recorder.Event(pod, eventType, reason, message)
}

// Stop flushes nothing more and ends the broadcaster's goroutines.
func (e *Events) Stop() { e.broadcaster.Shutdown() }

// eventSink writes events with knode's minimal client.
type eventSink struct{ api *api }

func (s eventSink) Create(e *v1.Event) (*v1.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	out := &v1.Event{}
	return out, s.api.core.Post().Namespace(e.Namespace).Resource("events").Body(e).Do(ctx).Into(out)
}

func (s eventSink) Update(e *v1.Event) (*v1.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	out := &v1.Event{}
	return out, s.api.core.Put().Namespace(e.Namespace).Resource("events").Name(e.Name).Body(e).Do(ctx).Into(out)
}

func (s eventSink) Patch(e *v1.Event, data []byte) (*v1.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	out := &v1.Event{}
	return out, s.api.core.Patch(types.StrategicMergePatchType).Namespace(e.Namespace).Resource("events").Name(e.Name).Body(data).Do(ctx).Into(out)
}
