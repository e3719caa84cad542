package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"

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

// Attributes builds the authorization request exactly as the kubelet does:
// the verb from the HTTP method, resource nodes named after this node, and the
// subresource chosen by path.
func Attributes(u user.Info, method, path, nodeName string) authorizer.AttributesRecord {
	return authorizer.AttributesRecord{
		User:            u,
		Verb:            verb(method),
		APIGroup:        "",
		APIVersion:      "v1",
		Resource:        "nodes",
		Subresource:     subresource(path),
		Name:            nodeName,
		ResourceRequest: true,
		Path:            path,
	}
}

func verb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
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
		return strings.ToLower(method)
	}
}

func subresource(path string) string {
	switch {
	case isSubpath(path, "/stats"):
		return "stats"
	case isSubpath(path, "/metrics"):
		return "metrics"
	case isSubpath(path, "/logs"):
		return "log"
	case isSubpath(path, "/checkpoint"), isSubpath(path, "/checkpoints"), isSubpath(path, "/restores"):
		return "checkpoint"
	default:
		return "proxy"
	}
}

func isSubpath(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// forbiddenMessage is the kubelet's 403 body.
func forbiddenMessage(a authorizer.Attributes) string {
	return fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=%s, subresource(s)=[%s])",
		a.GetUser().GetName(), a.GetVerb(), a.GetResource(), a.GetSubresource())
}

// withAuth authenticates, then authorizes, every request before h sees it.
func withAuth(authn authenticator.Request, authz Authorizer, nodeName string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok, err := authn.AuthenticateRequest(r)
		if err != nil || !ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		attrs := Attributes(resp.User, r.Method, r.URL.Path, nodeName)
		decision, reason, err := authz.Authorize(r.Context(), attrs)
		if err != nil {
			http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource(s)=[%s]): %v",
				attrs.User.GetName(), attrs.Verb, attrs.Resource, attrs.Subresource, err), http.StatusInternalServerError)
			return
		}
		if decision != authorizer.DecisionAllow {
			_ = reason
			http.Error(w, forbiddenMessage(attrs), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
