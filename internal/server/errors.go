package server

import (
	"net/http"
	"strconv"

	"knode.io/knode/internal/apierr"
)

// statusOf is the one place an error's kind becomes an HTTP status code.
// Services return errors with kinds (internal/apierr) and never pick codes;
// handlers return what services say. An error without a kind is this
// node's failure: 500.
var statusOf = map[apierr.Kind]int{
	apierr.Invalid:       http.StatusBadRequest,
	apierr.Forbidden:     http.StatusForbidden,
	apierr.NotFound:      http.StatusNotFound,
	apierr.Conflict:      http.StatusConflict,
	apierr.Unprocessable: http.StatusUnprocessableEntity,
	apierr.Internal:      http.StatusInternalServerError,
	apierr.Upstream:      http.StatusBadGateway,
	apierr.Unavailable:   http.StatusServiceUnavailable,
	apierr.TooLarge:      http.StatusInsufficientStorage,
}

// The server's own answers, with the kubelet's bodies.
func notFound(body string) error   { return apierr.New(apierr.NotFound, body) }
func badRequest(body string) error { return apierr.New(apierr.Invalid, body) }
func internal(body string) error   { return apierr.New(apierr.Internal, body) }

// writeError writes err as the kubelet would: plain text (the error's
// text, which for a kinded error is the caller's message), the status code
// of its kind, and Retry-After when the error carries a hint.
func writeError(w http.ResponseWriter, err error) {
	code, ok := statusOf[apierr.KindOf(err)]
	if !ok {
		code = http.StatusInternalServerError
	}
	if s := apierr.RetryAfter(err); s > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(s))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(err.Error()))
}
