package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"knode.io/knode/internal/server"
)

// reviewServer speaks the TokenReview and SubjectAccessReview APIs over
// HTTP, as the API server does, and counts what it is asked.
type reviewServer struct {
	mu           sync.Mutex
	tokenReviews int
	sars         []authorizationv1.SubjectAccessReviewSpec
	// valid tokens and their users; any other token is not authenticated.
	valid map[string]string
	// fail answers TokenReviews with 500.
	fail bool
	// hold, when set, keeps each TokenReview until it is closed; entered
	// gets one value per review that arrived.
	hold    chan struct{}
	entered chan struct{}
	// allow decides a SubjectAccessReview.
	allow func(authorizationv1.SubjectAccessReviewSpec) bool
}

func (s *reviewServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/apis/authentication.k8s.io/v1/tokenreviews":
		var tr authenticationv1.TokenReview
		if err := json.Unmarshal(body, &tr); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.tokenReviews++
		fail, hold, entered := s.fail, s.hold, s.entered
		name, ok := s.valid[tr.Spec.Token]
		s.mu.Unlock()
		if entered != nil {
			entered <- struct{}{}
		}
		if hold != nil {
			<-hold
		}
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":500}`)
			return
		}
		tr.Kind, tr.APIVersion = "TokenReview", "authentication.k8s.io/v1"
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: ok}
		if ok {
			tr.Status.User = authenticationv1.UserInfo{Username: name, Groups: []string{"team"}}
		}
		json.NewEncoder(w).Encode(&tr)
	case "/apis/authorization.k8s.io/v1/subjectaccessreviews":
		var sar authorizationv1.SubjectAccessReview
		if err := json.Unmarshal(body, &sar); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.sars = append(s.sars, sar.Spec)
		s.mu.Unlock()
		sar.Kind, sar.APIVersion = "SubjectAccessReview", "authorization.k8s.io/v1"
		sar.Status.Allowed = s.allow(sar.Spec)
		json.NewEncoder(w).Encode(&sar)
	default:
		http.NotFound(w, r)
	}
}

func (s *reviewServer) counts() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenReviews, len(s.sars)
}

func newWebhooks(t *testing.T, rs *reviewServer) *Webhooks {
	t.Helper()
	srv := httptest.NewServer(rs)
	t.Cleanup(srv.Close)
	w, err := NewWebhooks(testKubeconfig(t, srv.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func bearer(token string) *http.Request {
	r := httptest.NewRequest("GET", "/pods", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// TestSubjectAccessReviewCacheKey: an answer is reused only for the very
// same review. Requests that differ in one field of the user or the
// request (extra above all, which carries scopes) are each reviewed.
func TestSubjectAccessReviewCacheKey(t *testing.T) {
	rs := &reviewServer{allow: func(spec authorizationv1.SubjectAccessReviewSpec) bool {
		// Allowed only with the admin scope.
		return len(spec.Extra["scopes"]) == 1 && spec.Extra["scopes"][0] == "admin"
	}}
	w := newWebhooks(t, rs)
	base := func() authorizer.AttributesRecord {
		return authorizer.AttributesRecord{
			User: &user.DefaultInfo{Name: "alice", UID: "u1", Groups: []string{"team"},
				Extra: map[string][]string{"scopes": {"admin"}}},
			Verb: "get", APIVersion: "v1", Resource: "nodes", Subresource: "proxy", Name: "node1", ResourceRequest: true, Path: "/pods",
		}
	}
	ctx := context.Background()
	if d, _, err := w.Authorize(ctx, base()); err != nil || d != authorizer.DecisionAllow {
		t.Fatalf("admin scope: %v %v", d, err)
	}
	if d, _, err := w.Authorize(ctx, base()); err != nil || d != authorizer.DecisionAllow {
		t.Fatalf("the same review again: %v %v", d, err)
	}
	if _, n := rs.counts(); n != 1 {
		t.Fatalf("%d reviews for one question asked twice, want 1 (cached)", n)
	}
	// Only extra differs: another question, and here another answer.
	readOnly := base()
	readOnly.User = &user.DefaultInfo{Name: "alice", UID: "u1", Groups: []string{"team"}, Extra: map[string][]string{"scopes": {"read"}}}
	if d, _, err := w.Authorize(ctx, readOnly); err != nil || d != authorizer.DecisionDeny {
		t.Fatalf("a review differing only in extra was answered %v %v from the cache entry of another", d, err)
	}
	variants := map[string]func(a *authorizer.AttributesRecord){
		"uid":         func(a *authorizer.AttributesRecord) { a.User.(*user.DefaultInfo).UID = "u2" },
		"groups":      func(a *authorizer.AttributesRecord) { a.User.(*user.DefaultInfo).Groups = []string{"team", "more"} },
		"extra key":   func(a *authorizer.AttributesRecord) { a.User.(*user.DefaultInfo).Extra["other"] = []string{"x"} },
		"namespace":   func(a *authorizer.AttributesRecord) { a.Namespace = "ns" },
		"verb":        func(a *authorizer.AttributesRecord) { a.Verb = "create" },
		"group":       func(a *authorizer.AttributesRecord) { a.APIGroup = "x.io" },
		"version":     func(a *authorizer.AttributesRecord) { a.APIVersion = "v2" },
		"resource":    func(a *authorizer.AttributesRecord) { a.Resource = "pods" },
		"subresource": func(a *authorizer.AttributesRecord) { a.Subresource = "pods" },
		"name":        func(a *authorizer.AttributesRecord) { a.Name = "node2" },
		"non-resource": func(a *authorizer.AttributesRecord) {
			a.ResourceRequest = false
		},
		"non-resource path": func(a *authorizer.AttributesRecord) {
			a.ResourceRequest, a.Path = false, "/other"
		},
	}
	want := 2
	for name, change := range variants {
		a := base()
		change(&a)
		if _, _, err := w.Authorize(ctx, a); err != nil {
			t.Fatal(err)
		}
		want++
		if _, n := rs.counts(); n != want {
			t.Fatalf("%s: a review differing in it was served from the cache (%d reviews, want %d)", name, n, want)
		}
	}
	rs.mu.Lock()
	last := rs.sars[len(rs.sars)-1]
	rs.mu.Unlock()
	if last.NonResourceAttributes == nil && last.ResourceAttributes == nil {
		t.Fatalf("review without attributes: %+v", last)
	}
}

// TestTokenReviewCaching: answers, rejections included, are cached with
// the kubelet's TTLs; a failed call to the API server is not.
func TestTokenReviewCaching(t *testing.T) {
	rs := &reviewServer{valid: map[string]string{"good": "alice"}}
	w := newWebhooks(t, rs)
	for range 3 {
		if resp, ok, err := w.AuthenticateRequest(bearer("good")); err != nil || !ok || resp.User.GetName() != "alice" {
			t.Fatalf("good token: %v %v %v", resp, ok, err)
		}
		if _, ok, err := w.AuthenticateRequest(bearer("bad")); err != nil || ok {
			t.Fatalf("bad token: %v %v", ok, err)
		}
	}
	if n, _ := rs.counts(); n != 2 {
		t.Fatalf("%d TokenReviews for two tokens presented three times each, want 2", n)
	}
	rs.mu.Lock()
	rs.fail = true
	rs.mu.Unlock()
	for range 2 {
		if _, ok, err := w.AuthenticateRequest(bearer("other")); err == nil || ok {
			t.Fatalf("API server failing: %v %v, want an error", ok, err)
		}
	}
	if n, _ := rs.counts(); n != 4 {
		t.Fatalf("%d TokenReviews, want 4: an error is not an answer to cache", n)
	}
	// A flood of rejected tokens does not evict the good one.
	rs.mu.Lock()
	rs.fail = false
	rs.mu.Unlock()
	for i := range cacheEntries + 10 {
		w.tokenFailCache.put(fmt.Sprint("flood", i), struct{}{}, tokenFailedTTL)
	}
	if _, ok, _ := w.AuthenticateRequest(bearer("good")); !ok {
		t.Fatal("good token lost")
	}
	if n, _ := rs.counts(); n != 4 {
		t.Fatalf("the good token was reviewed again after a flood of rejected ones (%d reviews)", n)
	}
}

// TestTokenReviewBound: at most maxTokenReviews reviews are in flight; a
// request finding no slot gets a 429 with Retry-After from the HTTPS
// server, not a review; the same token presented concurrently is reviewed
// once.
func TestTokenReviewBound(t *testing.T) {
	rs := &reviewServer{valid: map[string]string{}, hold: make(chan struct{}), entered: make(chan struct{}, 100)}
	for i := range maxTokenReviews {
		rs.valid[fmt.Sprint("token-", i)] = fmt.Sprint("user-", i)
	}
	w := newWebhooks(t, rs)
	w.tokenWait = 0 // no slot free: answer at once (the test asserts no timing)

	var wg sync.WaitGroup
	results := make(chan error, maxTokenReviews+4)
	for i := range maxTokenReviews {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := w.AuthenticateRequest(bearer(fmt.Sprint("token-", i)))
			if err == nil && !ok {
				err = errors.New("not authenticated")
			}
			results <- err
		}()
	}
	// Four more requests with token-0 share its review in flight.
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := w.AuthenticateRequest(bearer("token-0"))
			if err == nil && !ok {
				err = errors.New("not authenticated")
			}
			results <- err
		}()
	}
	for range maxTokenReviews {
		<-rs.entered
	}
	// Every slot is taken: a random token is refused without a review,
	// and the HTTPS server answers 429.
	_, _, err := w.AuthenticateRequest(bearer("random"))
	var overloaded OverloadedError
	if !errors.As(err, &overloaded) {
		t.Fatalf("with %d reviews in flight: %v, want OverloadedError", maxTokenReviews, err)
	}
	srv := server.New(server.Config{NodeName: "n1",
		Authenticator: server.NewAuthenticator(server.AuthConfig{Token: w}),
		Authorizer:    alwaysAllowForTest{}})
	ts := httptest.NewTLSServer(srv.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("GET", ts.URL+"/healthz", nil)
	req.Header.Set("Authorization", "Bearer random-2")
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("HTTPS server with every review slot taken: %d %q Retry-After %q, want 429", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if n, _ := rs.counts(); n != maxTokenReviews {
		t.Fatalf("%d TokenReviews sent, want %d: the bound was passed", n, maxTokenReviews)
	}
	close(rs.hold)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatalf("a request within the bound: %v", err)
		}
	}
	// token-0's followers either shared its review or hit the cache.
	if n, _ := rs.counts(); n != maxTokenReviews {
		t.Fatalf("%d TokenReviews, want %d: one token presented concurrently was reviewed more than once", n, maxTokenReviews)
	}
	// Slots are free again.
	if _, ok, err := w.AuthenticateRequest(bearer("random")); err != nil || ok {
		t.Fatalf("after the flood: %v %v, want a plain rejection", ok, err)
	}
}

type alwaysAllowForTest struct{}

func (alwaysAllowForTest) Authorize(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
	return authorizer.DecisionAllow, "", nil
}
