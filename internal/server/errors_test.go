package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"knode.io/knode/internal/apierr"
)

// TestWriteErrorMapsKinds pins the one kind → status table: the codes the
// kubelet-compatible endpoints answer depend on it, and the body is the
// error's text, also when a kinded error is wrapped.
func TestWriteErrorMapsKinds(t *testing.T) {
	for _, tt := range []struct {
		err   error
		code  int
		body  string
		retry string
	}{
		{apierr.New(apierr.Invalid, "bad"), http.StatusBadRequest, "bad", ""},
		{apierr.New(apierr.Forbidden, "no"), http.StatusForbidden, "no", ""},
		{apierr.New(apierr.NotFound, "pod does not exist"), http.StatusNotFound, "pod does not exist", ""},
		{&apierr.Error{Kind: apierr.Conflict, Msg: "busy", RetryAfter: 5}, http.StatusConflict, "busy", "5"},
		{apierr.New(apierr.Unprocessable, "not an archive"), http.StatusUnprocessableEntity, "not an archive", ""},
		{apierr.New(apierr.Internal, "failed"), http.StatusInternalServerError, "failed", ""},
		{apierr.New(apierr.Upstream, "SourceRefused"), http.StatusBadGateway, "SourceRefused", ""},
		{&apierr.Error{Kind: apierr.Unavailable, Msg: "later", RetryAfter: 10}, http.StatusServiceUnavailable, "later", "10"},
		{apierr.New(apierr.TooLarge, "ArchiveTooLarge"), http.StatusInsufficientStorage, "ArchiveTooLarge", ""},
		{fmt.Errorf("%w: pod a/b", apierr.New(apierr.NotFound, "not static")), http.StatusNotFound, "not static: pod a/b", ""},
		{errors.New("plain"), http.StatusInternalServerError, "plain", ""},
	} {
		rec := httptest.NewRecorder()
		writeError(rec, tt.err)
		if rec.Code != tt.code || rec.Body.String() != tt.body || rec.Header().Get("Retry-After") != tt.retry {
			t.Errorf("%v: %d %q Retry-After %q, want %d %q %q", tt.err, rec.Code, rec.Body, rec.Header().Get("Retry-After"), tt.code, tt.body, tt.retry)
		}
	}
}
