// Package admission is the kubelet's pod admission (pkg/kubelet/lifecycle):
// before a pod's sandbox exists, an ordered chain of handlers decides
// whether the node takes it. The first handler that refuses decides the
// pod's fate: it ends Failed with that handler's reason and message, and
// nothing of it runs.
//
// A handler is anything with an Admit method; the chain is a plain slice,
// so a new check (sysctls, AppArmor, unsupported fields) is one more
// element where the agent builds it. Handlers must be quick and must not
// block on the network: admission runs one pod at a time so that each
// pod is measured against the ones admitted before it, as the kubelet's
// HandlePodAdditions does. The one wait is the kubelet's own: a critical
// pod's admission waits for the pods it preempts to stop (bounded by
// their grace periods).
package admission

import (
	v1 "k8s.io/api/core/v1"
)

// Attrs is what a handler decides on: the pod, and the pods the node has
// already admitted that have not finished (the kubelet's active pods).
type Attrs struct {
	Pod       *v1.Pod
	OtherPods []*v1.Pod
}

// Handler admits or refuses one pod. A refusal carries the kubelet's
// reason (a CamelCase word such as OutOfcpu or NodeAffinity) and message,
// which become the pod's status.reason and status.message.
type Handler interface {
	Admit(attrs *Attrs) (admit bool, reason, message string)
}

// HandlerFunc makes a function a Handler.
type HandlerFunc func(attrs *Attrs) (admit bool, reason, message string)

// Admit calls f.
func (f HandlerFunc) Admit(attrs *Attrs) (bool, string, string) { return f(attrs) }

// Chain runs its handlers in order; the first refusal is the answer.
type Chain []Handler

// Admit runs the chain.
func (c Chain) Admit(attrs *Attrs) (admit bool, reason, message string) {
	for _, h := range c {
		if ok, reason, message := h.Admit(attrs); !ok {
			return false, reason, message
		}
	}
	return true, "", ""
}
