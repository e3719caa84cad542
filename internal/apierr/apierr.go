// Package apierr gives domain errors a kind (not found, conflict, ...)
// without tying the domain to HTTP: services say what went wrong, and the
// API server alone decides which status code each kind is (one table, in
// internal/server). The message of a kinded error is the exact text a
// client reads, so services phrase it for the caller and keep internals in
// the wrapped error and the log.
package apierr

import "errors"

// Kind classifies a failure for the caller.
type Kind int

// The kinds handlers need. Unknown is every error that carries none: the
// server answers it as an internal error.
const (
	Unknown Kind = iota
	// Invalid: the request cannot be served as asked.
	Invalid
	// NotFound: the named thing does not exist (or may not be seen).
	NotFound
	// Forbidden: the request is understood and refused by policy.
	Forbidden
	// Conflict: the request collides with work in progress or existing state.
	Conflict
	// Unprocessable: the request is well formed but its content is not usable.
	Unprocessable
	// TooLarge: the request does not fit in the space or budget it needs.
	TooLarge
	// Unavailable: try again later (a busy resource, a dependency down).
	Unavailable
	// Upstream: another node or service this one asked failed.
	Upstream
	// Internal: this node failed; the message is still meant for the caller.
	Internal
)

// Error is a failure with a kind and the text the caller reads.
type Error struct {
	Kind Kind
	// Msg is the caller's text (the kubelet's exact body where there is one).
	Msg string
	// RetryAfter, when > 0, is a hint in seconds.
	RetryAfter int
	// Err is the cause, for logs and errors.Is; never shown to the caller.
	Err error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// New is an error of kind with the caller's text msg.
func New(kind Kind, msg string) *Error { return &Error{Kind: kind, Msg: msg} }

// Wrap is New with a cause kept for logs and errors.Is.
func Wrap(kind Kind, msg string, cause error) *Error { return &Error{Kind: kind, Msg: msg, Err: cause} }

// KindOf is the kind of the first kinded error in err's chain, or Unknown.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Unknown
}

// RetryAfter is the retry hint (seconds) of err's kinded error, or 0.
func RetryAfter(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
