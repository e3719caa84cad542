package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/anonymous"
	"k8s.io/apiserver/pkg/authentication/request/union"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// AuthConfig selects the authenticators, in the kubelet's order.
type AuthConfig struct {
	// ClientCAs verifies client certificates (user = CN, groups = O).
	ClientCAs *x509.CertPool
	// Token authenticates bearer tokens (cluster mode's TokenReview webhook); may be nil.
	Token authenticator.Request
	// Anonymous serves requests no authenticator accepted as system:anonymous.
	Anonymous bool
}

// LoadClientCAs reads a PEM CA bundle.
func LoadClientCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read client CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("client CA file %s holds no PEM certificates", path)
	}
	return pool, nil
}

// NewAuthenticator builds the chain x509 → token → anonymous, as the
// kubelet does, from k8s.io/apiserver's authenticators.
func NewAuthenticator(cfg AuthConfig) authenticator.Request {
	var chain []authenticator.Request
	if cfg.ClientCAs != nil {
		opts := x509request.DefaultVerifyOptions()
		opts.Roots = cfg.ClientCAs
		chain = append(chain, x509request.New(opts, x509request.CommonNameUserConversion))
	}
	if cfg.Token != nil {
		chain = append(chain, cfg.Token)
	}
	var authn authenticator.Request = group.NewAuthenticatedGroupAdder(union.New(chain...))
	if cfg.Anonymous {
		// Anonymous comes last and never fails; a presented but invalid
		// credential is still rejected first, as in the kubelet.
		authn = union.NewFailOnError(authn, anonymous.NewAuthenticator(nil))
	}
	if len(chain) == 0 && !cfg.Anonymous {
		return denyAll{}
	}
	return authn
}

type denyAll struct{}

func (denyAll) AuthenticateRequest(*http.Request) (*authenticator.Response, bool, error) {
	return nil, false, nil
}

// Authorizer decides one request; k8s.io/apiserver's authorizers (and the
// cluster mode's webhook) satisfy it.
type Authorizer interface {
	Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error)
}

// NewAuthorizer returns the authorizer for --authorization-mode. Webhook
// needs cluster mode, which passes its SubjectAccessReview authorizer in.
func NewAuthorizer(mode string, webhook Authorizer) (Authorizer, error) {
	switch mode {
	case "", "AlwaysAllow":
		return alwaysAllow{}, nil
	case "Webhook":
		if webhook == nil {
			return nil, fmt.Errorf("--authorization-mode=Webhook needs cluster mode (--kubeconfig) to reach a SubjectAccessReview API")
		}
		return webhook, nil
	default:
		return nil, fmt.Errorf("unknown authorization mode %q", mode)
	}
}

// alwaysAllow is --authorization-mode=AlwaysAllow. (apiserver's
// authorizerfactory has the same, but linking it pulls in every API group's
// client, a third of knode's memory.)
type alwaysAllow struct{}

func (alwaysAllow) Authorize(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
	return authorizer.DecisionAllow, "", nil
}

// Subresources of nodes that knode's routes are authorized against.
const (
	subProxy      = "proxy"
	subPods       = "pods"
	subHealthz    = "healthz"
	subConfigz    = "configz"
	subStatusz    = "statusz"
	subStats      = "stats"
	subMetrics    = "metrics"
	subLog        = "log"
	subCheckpoint = "checkpoint"
)

// routeAuthz is THE authorization table: every route the secure port
// registers (its net/http pattern, exactly as passed to Server.Handle) and
// the nodes subresources a request to it is checked against, in order. The
// first subresource is the fine-grained one; later ones are fallbacks, as
// the kubelet's KubeletFineGrainedAuthz (GA in v1.36) checks `pods` and then
// `proxy`. The verb always comes from the HTTP method (requestVerb).
//
// The kubelet's paths keep the kubelet's mapping. knode's own endpoints ask
// for what they give: an archive's content is a memory dump and restores
// and stops start and stop workloads, so they need what exec needs
// (nodes/proxy); only metadata and taking or deleting an archive stay on
// nodes/checkpoint. README.md shows this table; TestRouteAuthorization
// checks it row by row and that every registered route has a row.
var routeAuthz = map[string][]string{
	// The kubelet's endpoints.
	"/healthz":              {subHealthz, subProxy},
	"/healthz/{check}":      {subHealthz, subProxy},
	"GET /pods":             {subPods, subProxy},
	"GET /runningpods/":     {subPods, subProxy},
	"GET /configz":          {subConfigz, subProxy},
	"GET /metrics":          {subMetrics},
	"GET /metrics/resource": {subMetrics},
	"GET /stats/summary":    {subStats},
	"GET /containerLogs/{namespace}/{pod}/{container}": {subProxy},
	"POST /checkpoint/{namespace}/{pod}/{container}":   {subCheckpoint},
	"/checkpoint/{namespace}/{pod}/{container}":        {subCheckpoint}, // other methods: 405
	"GET /exec/{namespace}/{pod}/{container}":          {subProxy},
	"POST /exec/{namespace}/{pod}/{container}":         {subProxy},
	"GET /exec/{namespace}/{pod}/{uid}/{container}":    {subProxy},
	"POST /exec/{namespace}/{pod}/{uid}/{container}":   {subProxy},
	"GET /attach/{namespace}/{pod}/{container}":        {subProxy},
	"POST /attach/{namespace}/{pod}/{container}":       {subProxy},
	"GET /attach/{namespace}/{pod}/{uid}/{container}":  {subProxy},
	"POST /attach/{namespace}/{pod}/{uid}/{container}": {subProxy},
	"GET /portForward/{namespace}/{pod}":               {subProxy},
	"POST /portForward/{namespace}/{pod}":              {subProxy},
	"GET /portForward/{namespace}/{pod}/{uid}":         {subProxy},
	"POST /portForward/{namespace}/{pod}/{uid}":        {subProxy},
	// knode's own endpoints.
	"GET /devices":                       {subProxy},
	"GET /checkpoints":                   {subCheckpoint},
	"GET /checkpoints/{archive}":         {subCheckpoint},
	"DELETE /checkpoints/{archive}":      {subCheckpoint},
	"GET /checkpoints/{archive}/content": {subProxy},
	"POST /restores":                     {subProxy},
	"DELETE /restores/{name}":            {subProxy},
	"POST /pods/{namespace}/{name}/stop": {subProxy},
}

// unroutedSubresources maps a request no route matches (404, 405, a
// redirect to the canonical path) by path prefix, exactly as the kubelet
// maps every request, so an authenticated caller learns nothing about which
// paths exist without the permission the kubelet would ask for.
func unroutedSubresources(path string) []string {
	switch {
	case isSubpath(path, "/pods"), isSubpath(path, "/runningpods"):
		return []string{subPods, subProxy}
	case isSubpath(path, "/healthz"):
		return []string{subHealthz, subProxy}
	case isSubpath(path, "/configz"):
		return []string{subConfigz, subProxy}
	case isSubpath(path, "/statusz"):
		return []string{subStatusz, subProxy}
	case isSubpath(path, "/stats"):
		return []string{subStats}
	case isSubpath(path, "/metrics"):
		return []string{subMetrics}
	case isSubpath(path, "/logs"):
		return []string{subLog}
	case isSubpath(path, "/checkpoint"):
		return []string{subCheckpoint}
	default:
		return []string{subProxy}
	}
}

// subresourcesFor returns the subresources to check for a request that the
// mux routes to pattern ("" when it routes nowhere).
func subresourcesFor(pattern, path string) []string {
	if subs, ok := routeAuthz[pattern]; ok {
		return subs
	}
	return unroutedSubresources(path)
}

// requestVerb is the kubelet's verb for an HTTP method. The kubelet maps
// only these five; HEAD and every other method get the empty verb, which an
// RBAC rule grants only through "*".
func requestVerb(method string) string {
	switch method {
	case http.MethodGet:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	default:
		return ""
	}
}

// Attributes builds the authorization requests for one request exactly as
// the kubelet does — the verb from the HTTP method, resource nodes named
// after this node — one per subresource in the order they are tried.
// pattern is the route the mux chose for the request ("" for none).
func Attributes(u user.Info, method, path, pattern, nodeName string) []authorizer.AttributesRecord {
	subs := subresourcesFor(pattern, path)
	out := make([]authorizer.AttributesRecord, 0, len(subs))
	for _, sub := range subs {
		out = append(out, authorizer.AttributesRecord{
			User:            u,
			Verb:            requestVerb(method),
			APIGroup:        "",
			APIVersion:      "v1",
			Resource:        "nodes",
			Subresource:     sub,
			Name:            nodeName,
			ResourceRequest: true,
			Path:            path,
		})
	}
	return out
}

// isSubpath is the kubelet's: path itself or anything below it.
func isSubpath(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// forbiddenMessage is the kubelet's 403 body, listing every subresource tried.
func forbiddenMessage(attrs []authorizer.AttributesRecord) string {
	a := attrs[0]
	return fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=%s, subresource(s)=[%s])",
		a.GetUser().GetName(), a.GetVerb(), a.GetResource(), joinSubresources(attrs))
}

func joinSubresources(attrs []authorizer.AttributesRecord) string {
	subs := make([]string, len(attrs))
	for i, a := range attrs {
		subs[i] = a.Subresource
	}
	return strings.Join(subs, " ")
}

// withAuth authenticates, then authorizes, every request before h sees it.
// routes is the mux h serves, asked (without serving) which route the
// request will take, so the check is the one that route's row names.
func withAuth(authn authenticator.Request, authz Authorizer, nodeName string, routes *http.ServeMux, log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok, err := authn.AuthenticateRequest(r)
		if wait, busy := retryAfter(err); busy {
			// Too many credentials being checked at once: ask the client
			// to come back rather than queue without bound or answer 401
			// to a credential that may well be valid.
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Round(time.Second)/time.Second)))
			http.Error(w, "Too many requests, please try again later.", http.StatusTooManyRequests)
			return
		}
		if err != nil || !ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		_, pattern := routes.Handler(r)
		attrs := Attributes(resp.User, r.Method, r.URL.Path, pattern, nodeName)
		for _, a := range attrs {
			decision, _, err := authz.Authorize(r.Context(), a)
			if err != nil {
				// The cause (often the API server's address and a dial
				// error) is logged, not told to the client, as the kubelet does.
				log.Error("authorization failed", "user", a.User.GetName(), "verb", a.Verb, "subresource", a.Subresource, "path", a.Path, "err", err)
				http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource(s)=[%s])",
					a.User.GetName(), a.Verb, a.Resource, joinSubresources(attrs)), http.StatusInternalServerError)
				return
			}
			if decision == authorizer.DecisionAllow {
				h.ServeHTTP(w, r)
				return
			}
		}
		http.Error(w, forbiddenMessage(attrs), http.StatusForbidden)
	})
}

// overloaded is what an authenticator returns when it will not check a
// credential now because too many checks are in flight (the TokenReview
// webhook's bound); the server answers 429 with Retry-After, not 401.
type overloaded interface {
	error
	RetryAfter() time.Duration
}

// retryAfter finds an overloaded error, also inside the aggregate the
// authenticator union returns.
func retryAfter(err error) (time.Duration, bool) {
	if err == nil {
		return 0, false
	}
	var o overloaded
	if errors.As(err, &o) {
		return max(o.RetryAfter(), time.Second), true
	}
	if agg, ok := err.(utilerrors.Aggregate); ok {
		for _, e := range agg.Errors() {
			if d, ok := retryAfter(e); ok {
				return d, true
			}
		}
	}
	return 0, false
}
