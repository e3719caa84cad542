package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// Webhooks authenticate bearer tokens with TokenReview and authorize
// requests with SubjectAccessReview, as the kubelet's --authentication-token-webhook
// and --authorization-mode=Webhook do.
type Webhooks struct {
	api *api
	// Answers are cached with the kubelet's TTLs: tokens 2 min, allowed
	// decisions 5 min, denied ones 30 s.
	tokenCache *ttlCache[*authenticator.Response]
	authzCache *ttlCache[authorizer.Decision]
}

// The kubelet's webhook cache TTLs.
const (
	tokenTTL      = 2 * time.Minute
	authorizedTTL = 5 * time.Minute
	deniedTTL     = 30 * time.Second
)

// ttlCache is a small map of answers with expiry, bounded in size.
type ttlCache[V any] struct {
	mu      sync.Mutex
	entries map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	value   V
	expires time.Time
}

func newTTLCache[V any]() *ttlCache[V] { return &ttlCache[V]{entries: map[string]ttlEntry[V]{}} }

func (c *ttlCache[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || time.Now().After(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

func (c *ttlCache[V]) put(key string, v V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= 4096 {
		c.entries = map[string]ttlEntry[V]{} // bounded: start over rather than grow
	}
	c.entries[key] = ttlEntry[V]{value: v, expires: time.Now().Add(ttl)}
}

// NewWebhooks uses the node's kubeconfig; requests, when set, is told of
// every TokenReview and SubjectAccessReview sent.
func NewWebhooks(kubeconfig string, requests RequestObserver) (*Webhooks, error) {
	a, err := newAPI(kubeconfig, "knode-webhooks", requests)
	if err != nil {
		return nil, err
	}
	return &Webhooks{api: a,
		tokenCache: newTTLCache[*authenticator.Response](), authzCache: newTTLCache[authorizer.Decision]()}, nil
}

// AuthenticateRequest implements authenticator.Request for bearer tokens.
func (w *Webhooks) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return nil, false, nil
	}
	key := hashKey(token)
	if resp, ok := w.tokenCache.get(key); ok {
		return resp, resp != nil, nil
	}
	review, err := w.api.tokenReview(req.Context(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}})
	if err != nil {
		return nil, false, fmt.Errorf("TokenReview: %w", err)
	}
	if !review.Status.Authenticated {
		w.tokenCache.put(key, nil, tokenTTL)
		return nil, false, nil
	}
	u := review.Status.User
	extra := map[string][]string{}
	for k, v := range u.Extra {
		extra[k] = v
	}
	resp := &authenticator.Response{User: &user.DefaultInfo{Name: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra}}
	w.tokenCache.put(key, resp, tokenTTL)
	return resp, true, nil
}

// hashKey keeps cache keys free of secrets.
func hashKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Authorize implements the server's authorizer with a SubjectAccessReview.
func (w *Webhooks) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	u := a.GetUser()
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.GetExtra() {
		extra[k] = v
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups(), Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.GetVerb(), Group: a.GetAPIGroup(), Version: a.GetAPIVersion(), Resource: a.GetResource(),
			Subresource: a.GetSubresource(), Name: a.GetName(),
		},
	}}
	key := hashKey(append([]string{u.GetName(), u.GetUID(), a.GetVerb(), a.GetResource(), a.GetSubresource(), a.GetName()}, u.GetGroups()...)...)
	if d, ok := w.authzCache.get(key); ok {
		return d, "", nil
	}
	res, err := w.api.subjectAccessReview(ctx, sar)
	if err != nil {
		return authorizer.DecisionNoOpinion, "", fmt.Errorf("SubjectAccessReview: %w", err)
	}
	if res.Status.Allowed {
		w.authzCache.put(key, authorizer.DecisionAllow, authorizedTTL)
		return authorizer.DecisionAllow, res.Status.Reason, nil
	}
	w.authzCache.put(key, authorizer.DecisionDeny, deniedTTL)
	return authorizer.DecisionDeny, res.Status.Reason, nil
}
