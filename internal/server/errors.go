package server

import (
	"errors"
	"net/http"
	"strconv"

	"knode.io/knode/internal/checkpoint"
)

// httpError carries the exact body a kubelet client expects; writeError
// maps every error handlers return to an HTTP code, in this one place.
type httpError struct {
	code int
	body string
	// retryAfter is sent as Retry-After seconds when > 0.
	retryAfter int
}

func (e *httpError) Error() string { return e.body }

func notFound(body string) error   { return &httpError{code: http.StatusNotFound, body: body} }
func badRequest(body string) error { return &httpError{code: http.StatusBadRequest, body: body} }
func internal(body string) error   { return &httpError{code: http.StatusInternalServerError, body: body} }

// writeError writes err as the kubelet would: plain text, the status code
// derived from the error.
func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	var ce *checkpoint.Error
	switch {
	case errors.As(err, &ce):
		he = &httpError{code: ce.Code, body: ce.Body, retryAfter: ce.RetryAfter}
	case errors.Is(err, checkpoint.ErrArchiveNotFound):
		he = &httpError{code: http.StatusNotFound, body: err.Error()}
	case errors.Is(err, checkpoint.ErrNotArchive):
		he = &httpError{code: http.StatusUnprocessableEntity, body: err.Error()}
	}
	if he == nil && !errors.As(err, &he) {
		he = &httpError{code: http.StatusInternalServerError, body: err.Error()}
	}
	if he.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(he.retryAfter))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(he.code)
	_, _ = w.Write([]byte(he.body))
}
