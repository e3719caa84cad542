package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/proxy"

	"knode.io/knode/internal/pods"
)

// Streaming hands out the runtime's streaming URLs for exec, attach and
// port forwarding; the server proxies the client's upgraded connection
// there, as the kubelet does, so `kubectl exec`, `attach` and
// `port-forward` work through the API server.
type Streaming interface {
	ExecURL(ctx context.Context, namespace, pod, container string, cmd []string, o pods.StreamOptions) (*url.URL, error)
	AttachURL(ctx context.Context, namespace, pod, container string, o pods.StreamOptions) (*url.URL, error)
	PortForwardURL(ctx context.Context, namespace, pod string, ports []int32) (*url.URL, error)
}

// installStreaming adds the kubelet's routes, with and without the pod's UID.
func (s *Server) installStreaming(st Streaming) {
	for _, method := range []string{"GET", "POST"} {
		for _, path := range []string{"/exec/{namespace}/{pod}/{container}", "/exec/{namespace}/{pod}/{uid}/{container}"} {
			s.Handle(method+" "+path, s.streamHandler(st, true), false)
		}
		for _, path := range []string{"/attach/{namespace}/{pod}/{container}", "/attach/{namespace}/{pod}/{uid}/{container}"} {
			s.Handle(method+" "+path, s.streamHandler(st, false), false)
		}
		for _, path := range []string{"/portForward/{namespace}/{pod}", "/portForward/{namespace}/{pod}/{uid}"} {
			s.Handle(method+" "+path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.portForward(st, w, r) }), false)
		}
	}
}

// streamOptions reads the kubelet's query parameters: input, output, error
// and tty, each "1" (or "true") when asked for.
func streamOptions(r *http.Request) (pods.StreamOptions, error) {
	q := r.URL.Query()
	on := func(key string) bool {
		v := q.Get(key)
		return v == "1" || strings.EqualFold(v, "true")
	}
	o := pods.StreamOptions{Stdin: on("input"), Stdout: on("output"), Stderr: on("error"), TTY: on("tty")}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		return o, badRequest("you must specify at least 1 of stdin, stdout, stderr")
	}
	if o.TTY && o.Stderr {
		// A terminal merges the two streams; the kubelet refuses the pair.
		return o, badRequest("tty and stderr cannot both be true")
	}
	return o, nil
}

func (s *Server) streamHandler(st Streaming, exec bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns, podName, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
		if err := validatePodRef(ns, podName, container); err != nil {
			writeError(w, err)
			return
		}
		o, err := streamOptions(r)
		if err != nil {
			writeError(w, err)
			return
		}
		if err := s.checkPodUID(ns, podName, r.PathValue("uid")); err != nil {
			writeError(w, err)
			return
		}
		var u *url.URL
		if exec {
			cmd := r.URL.Query()["command"]
			if len(cmd) == 0 {
				writeError(w, badRequest("missing command"))
				return
			}
			u, err = st.ExecURL(r.Context(), ns, podName, container, cmd, o)
		} else {
			u, err = st.AttachURL(r.Context(), ns, podName, container, o)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		proxyStream(w, r, u)
	})
}

func (s *Server) portForward(st Streaming, w http.ResponseWriter, r *http.Request) {
	ns, podName := r.PathValue("namespace"), r.PathValue("pod")
	if err := validatePodRef(ns, podName, ""); err != nil {
		writeError(w, err)
		return
	}
	if err := s.checkPodUID(ns, podName, r.PathValue("uid")); err != nil {
		writeError(w, err)
		return
	}
	// Ports may come as query parameters (websocket clients); SPDY clients
	// name them per stream, which the runtime reads.
	var ports []int32
	for _, v := range r.URL.Query()["port"] {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil || p == 0 {
			writeError(w, badRequest(fmt.Sprintf("invalid port %q", v)))
			return
		}
		ports = append(ports, int32(p))
	}
	u, err := st.PortForwardURL(r.Context(), ns, podName, ports)
	if err != nil {
		writeError(w, err)
		return
	}
	proxyStream(w, r, u)
}

// checkPodUID answers 404 when the path names a pod UID that is not the
// pod's: the caller meant one instance of the pod, and a pod deleted and
// created again under the same name is another one, whose containers it
// must not reach. The kubelet answers so for port forwarding ("pod not
// found"); for exec and attach it resolves by name alone, knode checks all
// three alike.
func (s *Server) checkPodUID(namespace, name, uid string) error {
	if uid == "" {
		return nil
	}
	pod, ok := s.cfg.Pods.GetPod(namespace, name)
	if !ok {
		return notFound("pod does not exist")
	}
	if string(pod.UID) != uid {
		return notFound("pod not found")
	}
	return nil
}

// proxyStream hands the client's connection to the runtime's streaming
// server. The session may last long: the server's read and write deadlines
// are lifted for it.
func proxyStream(w http.ResponseWriter, r *http.Request, u *url.URL) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	handler := proxy.NewUpgradeAwareHandler(u, nil, false, true, streamResponder{})
	handler.ServeHTTP(w, r)
}

type streamResponder struct{}

func (streamResponder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	writeError(w, internal(err.Error()))
}
