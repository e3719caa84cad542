package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/time/rate"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The kubelet's event rules (client-go's recorder defaults): a repeat
// within 10 minutes raises the count of the event already written instead of
// writing a new one, and each pod may cause 25 events at once, then one per
// 5 minutes.
const (
	eventRepeatWindow = 10 * time.Minute
	eventBurst        = 25
	eventRefill       = 5 * time.Minute
	eventQueue        = 1000
	eventMemory       = 4096 // distinct events and pods remembered, at most
)

// Events publishes the kubelet's pod events to the API server, from one
// goroutine, never blocking a pod worker: when the API server cannot keep up
// the queue drops events, as the kubelet's does. Its source is the kubelet's
// ("kubelet" on this node), so `kubectl describe`, event exporters and alerts
// that filter on it keep working.
//
// client-go's record package does the same, but it computes strategic merge
// patches and so links OpenAPI: 3 MB of binary and 2 MiB of resident memory
// for an agent whose budget is 32 MiB. A repeat here is a JSON merge patch of
// count and lastTimestamp.
type Events struct {
	api   *api
	host  string
	queue chan *v1.Event
	log   *slog.Logger
	now   func() time.Time

	// Only the publishing goroutine touches these.
	written  map[string]writtenEvent // by what makes two events the same
	limiters map[types.UID]*rate.Limiter
}

type writtenEvent struct {
	name  string
	count int32
	last  time.Time
}

// NewEvents returns the node's event publisher; Run publishes. The node
// publishes its own events (Starting, NodeReady, ...) through it too.
func (n *Node) NewEvents() *Events {
	e := &Events{api: n.api, host: n.facts.NodeName, queue: make(chan *v1.Event, eventQueue), log: n.log, now: time.Now,
		written: map[string]writtenEvent{}, limiters: map[types.UID]*rate.Limiter{}}
	n.events = e
	return e
}

// Event queues one event about pod; eventType is Normal or Warning.
func (e *Events) Event(pod *v1.Pod, eventType, reason, message string) {
	e.publishAbout(v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
		UID: pod.UID, ResourceVersion: pod.ResourceVersion}, pod.Namespace, eventType, reason, message)
}

// NodeEvent queues one event about the node: what the pod manager tells
// of the node itself (MissingClusterDNS).
func (e *Events) NodeEvent(eventType, reason, message string) {
	e.nodeEvent(eventType, reason, message)
}

// nodeEvent queues one event about the node, referred to as the kubelet
// does (its UID is its name), in the default namespace.
func (e *Events) nodeEvent(eventType, reason, message string) {
	e.publishAbout(v1.ObjectReference{Kind: "Node", Name: e.host, UID: types.UID(e.host)}, metav1.NamespaceDefault, eventType, reason, message)
}

func (e *Events) publishAbout(ref v1.ObjectReference, namespace, eventType, reason, message string) {
	now := metav1.NewTime(e.now())
	ev := &v1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()), Namespace: namespace},
		InvolvedObject: ref,
		Reason:         reason, Message: message, Type: eventType,
		Source:         v1.EventSource{Component: "kubelet", Host: e.host},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "kubelet", ReportingInstance: e.host,
	}
	select {
	case e.queue <- ev:
	default:
		e.log.Debug("event queue full; event dropped", "object", ref.Kind+" "+ref.Namespace+"/"+ref.Name, "reason", reason)
	}
}

// Run publishes queued events until ctx ends.
func (e *Events) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-e.queue:
			e.publish(ctx, ev)
		}
	}
}

func (e *Events) publish(ctx context.Context, ev *v1.Event) {
	if !e.allow(ev.InvolvedObject.UID) {
		return
	}
	key := string(ev.InvolvedObject.UID) + "\x00" + ev.Type + "\x00" + ev.Reason + "\x00" + ev.Message
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	now := ev.LastTimestamp.Time
	if prev, ok := e.written[key]; ok && now.Sub(prev.last) < eventRepeatWindow {
		prev.count++
		prev.last = now
		patch, _ := json.Marshal(map[string]any{"count": prev.count, "lastTimestamp": ev.LastTimestamp})
		err := e.api.core.Patch(types.MergePatchType).Namespace(ev.Namespace).Resource("events").Name(prev.name).Body(patch).Do(ctx).Error()
		if err == nil {
			e.written[key] = prev
			return
		}
		// The event is gone (expired, deleted): write it anew.
	}
	if err := e.api.core.Post().Namespace(ev.Namespace).Resource("events").Body(ev).Do(ctx).Error(); err != nil {
		e.log.Debug("event not written", "pod", ev.Namespace+"/"+ev.InvolvedObject.Name, "reason", ev.Reason, "err", err)
		return
	}
	if len(e.written) >= eventMemory {
		e.written = map[string]writtenEvent{} // bounded: start over rather than grow
	}
	e.written[key] = writtenEvent{name: ev.Name, count: 1, last: now}
}

// allow is the per-pod spam filter.
func (e *Events) allow(uid types.UID) bool {
	l, ok := e.limiters[uid]
	if !ok {
		if len(e.limiters) >= eventMemory {
			e.limiters = map[types.UID]*rate.Limiter{}
		}
		l = rate.NewLimiter(rate.Every(eventRefill), eventBurst)
		e.limiters[uid] = l
	}
	return l.AllowN(e.now(), 1)
}
