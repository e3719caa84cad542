package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
//
// Anyone who can reach the port can present a bearer token, so what a
// token costs is bounded. Answers are cached with the kubelet's TTLs,
// rejections too, in a cache of their own so a flood of made-up tokens
// cannot evict the tokens of real clients; the same token asked for
// concurrently is reviewed once; at most maxTokenReviews reviews are in
// flight, and a request that finds no slot within tokenReviewWait is told
// to retry (429). The reviews go through a client of their own (newAPI
// gives every client its own rate limiter), so however many tokens arrive,
// the node's lease and status updates keep their rate budget — the
// kubelet sends its TokenReviews through its main client, where a flood
// delays its heartbeats.
type Webhooks struct {
	api *api
	key []byte // HMAC key of the token caches: no token is kept in memory

	tokenCache     *ttlCache[*authenticator.Response] // authenticated tokens
	tokenFailCache *ttlCache[struct{}]                // tokens the API server rejected
	authzCache     *ttlCache[authorizer.Decision]

	slots     chan struct{} // one per TokenReview in flight
	tokenWait time.Duration

	mu       sync.Mutex
	inflight map[string]*tokenCall // reviews in flight, by token key
}

// The kubelet's webhook cache TTLs (KubeletConfiguration v1beta1 defaults:
// authentication.webhook.cacheTTL 2m, which the kubelet's delegating
// authenticator uses for rejected tokens as well; authorization.webhook
// cacheAuthorizedTTL 5m and cacheUnauthorizedTTL 30s).
const (
	tokenTTL       = 2 * time.Minute
	tokenFailedTTL = 2 * time.Minute
	authorizedTTL  = 5 * time.Minute
	deniedTTL      = 30 * time.Second
)

// Bounds on TokenReviews. A node's legitimate callers (the API server,
// monitoring agents) present a handful of tokens, almost all answered from
// the cache; 8 reviews in flight is plenty for them.
const (
	maxTokenReviews = 8
	tokenReviewWait = time.Second
	cacheEntries    = 4096
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
	if len(c.entries) >= cacheEntries {
		// Bounded: drop what has expired, and start over if that is not enough.
		now := time.Now()
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= cacheEntries {
			c.entries = map[string]ttlEntry[V]{}
		}
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
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("token cache key: %w", err)
	}
	return &Webhooks{api: a, key: key,
		tokenCache: newTTLCache[*authenticator.Response](), tokenFailCache: newTTLCache[struct{}](),
		authzCache: newTTLCache[authorizer.Decision](),
		slots:      make(chan struct{}, maxTokenReviews), tokenWait: tokenReviewWait,
		inflight: map[string]*tokenCall{}}, nil
}

// OverloadedError says a token was not reviewed because maxTokenReviews
// were in flight; the HTTPS server answers it with 429 and Retry-After.
type OverloadedError struct{}

func (OverloadedError) Error() string {
	return fmt.Sprintf("%d TokenReviews in flight: retry later", maxTokenReviews)
}

// RetryAfter is how long a client should wait before trying again.
func (OverloadedError) RetryAfter() time.Duration { return time.Second }

// tokenCall is one TokenReview that concurrent requests with the same token share.
type tokenCall struct {
	done chan struct{}
	resp *authenticator.Response
	err  error
}

// AuthenticateRequest implements authenticator.Request for bearer tokens.
func (w *Webhooks) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return nil, false, nil
	}
	key := w.tokenKey(token)
	if resp, ok := w.tokenCache.get(key); ok {
		return resp, true, nil
	}
	if _, ok := w.tokenFailCache.get(key); ok {
		return nil, false, nil
	}
	w.mu.Lock()
	call, shared := w.inflight[key]
	if !shared {
		call = &tokenCall{done: make(chan struct{})}
		w.inflight[key] = call
	}
	w.mu.Unlock()
	if !shared {
		call.resp, call.err = w.review(req.Context(), key, token)
		w.mu.Lock()
		delete(w.inflight, key)
		w.mu.Unlock()
		close(call.done)
	} else {
		select {
		case <-call.done:
		case <-req.Context().Done():
			return nil, false, req.Context().Err()
		}
	}
	return call.resp, call.resp != nil, call.err
}

// review sends one TokenReview, if a slot is free soon, and caches its answer.
func (w *Webhooks) review(ctx context.Context, key, token string) (*authenticator.Response, error) {
	if !w.acquire(ctx) {
		return nil, OverloadedError{}
	}
	defer func() { <-w.slots }()
	review, err := w.api.tokenReview(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}})
	if err != nil {
		// Not cached: the API server may answer the next time.
		return nil, fmt.Errorf("TokenReview: %w", err)
	}
	if !review.Status.Authenticated {
		w.tokenFailCache.put(key, struct{}{}, tokenFailedTTL)
		return nil, nil
	}
	u := review.Status.User
	extra := map[string][]string{}
	for k, v := range u.Extra {
		extra[k] = v
	}
	resp := &authenticator.Response{User: &user.DefaultInfo{Name: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra}}
	w.tokenCache.put(key, resp, tokenTTL)
	return resp, nil
}

// acquire takes a review slot, waiting at most tokenWait.
func (w *Webhooks) acquire(ctx context.Context) bool {
	select {
	case w.slots <- struct{}{}:
		return true
	default:
	}
	if w.tokenWait <= 0 {
		return false
	}
	timer := time.NewTimer(w.tokenWait)
	defer timer.Stop()
	select {
	case w.slots <- struct{}{}:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// tokenKey is an HMAC of the token with a per-process key, so the caches
// hold nothing a memory dump could replay.
func (w *Webhooks) tokenKey(token string) string {
	h := hmac.New(sha256.New, w.key)
	h.Write([]byte(token))
	return hex.EncodeToString(h.Sum(nil))
}

// subjectAccessReview is the review the kubelet sends for a in a request:
// the user's name, UID, groups and extra, and every attribute of the
// request.
func subjectAccessReview(a authorizer.Attributes) *authorizationv1.SubjectAccessReview {
	u := a.GetUser()
	var extra map[string]authorizationv1.ExtraValue
	if len(u.GetExtra()) > 0 {
		extra = map[string]authorizationv1.ExtraValue{}
		for k, v := range u.GetExtra() {
			extra[k] = v
		}
	}
	spec := authorizationv1.SubjectAccessReviewSpec{User: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups(), Extra: extra}
	if a.IsResourceRequest() {
		spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
			Namespace: a.GetNamespace(), Verb: a.GetVerb(), Group: a.GetAPIGroup(), Version: a.GetAPIVersion(),
			Resource: a.GetResource(), Subresource: a.GetSubresource(), Name: a.GetName(),
		}
	} else {
		spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: a.GetPath(), Verb: a.GetVerb()}
	}
	return &authorizationv1.SubjectAccessReview{Spec: spec}
}

// sarKey is the cache key of a review: a digest of its whole spec, so two
// requests share an answer only if the API server would be asked the very
// same question (a different extra value, UID or group is another question).
func sarKey(sar *authorizationv1.SubjectAccessReview) (string, error) {
	data, err := json.Marshal(sar.Spec) // map keys are sorted: one encoding per spec
	if err != nil {
		return "", fmt.Errorf("SubjectAccessReview cache key: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// Authorize implements the server's authorizer with a SubjectAccessReview.
func (w *Webhooks) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	sar := subjectAccessReview(a)
	key, err := sarKey(sar)
	if err != nil {
		return authorizer.DecisionNoOpinion, "", err
	}
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
