// Package sinks writes the results of each batch to recstream's outputs:
// ClickHouse (raw events and recommendations, for analytics and serving
// look-ups) and the compacted Kafka output topic (recommendations, for
// downstream consumers). Every write is idempotent: the same batch written
// twice leaves the same final state, so the pipeline retries freely and
// replays rewrite identical rows.
//
// A sink's Write returns only when the whole batch is durably accepted (the
// pipeline commits input offsets after every sink returned nil), or with an
// error in one of these classes:
//
//   - errors.Is(err, ErrUnavailable): transient. The output cannot take the
//     batch now: connection refused or reset, timeout, server overloaded,
//     broker or partition leader not available. Nothing about the batch is
//     wrong; retry the same batch with backoff and stop consuming meanwhile
//     (back-pressure). Part of the batch may have been written; that is
//     harmless since writes are idempotent.
//   - errors.Is(err, context.Canceled): the caller's context was cancelled
//     (shut down). The batch is not acknowledged; it is read again after
//     restart. A context that passed its deadline is a timeout instead:
//     ErrUnavailable, so a per-attempt deadline leads to a retry.
//   - anything else: fatal. The batch cannot be written as it is (schema
//     mismatch, message too large, permission denied, bad configuration).
//     Retrying will not help: stop the pipeline without committing, and let
//     an operator fix the cause.
//
// An ErrUnavailable error wraps the underlying cause too, so errors.Is and
// errors.As also find the driver's error.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// ErrUnavailable marks a transient failure of a sink: the output cannot take
// the batch now, and retrying the same batch later is the right response
// (see the package documentation for the error classes).
var ErrUnavailable = errors.New("sink unavailable")

// unavailable wraps cause as ErrUnavailable, saying what was being done.
func unavailable(what string, cause error) error {
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, cause)
}

// isTransientNetwork reports whether err comes from the network or a
// deadline rather than from what was sent: refused, reset or closed
// connections, unreachable hosts, timeouts, and connections cut mid-stream.
// A cancelled context is not transient: it is the caller's decision.
func isTransientNetwork(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	for _, target := range []error{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT,
		io.EOF, io.ErrUnexpectedEOF, net.ErrClosed,
		os.ErrDeadlineExceeded, context.DeadlineExceeded,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	// Any failure of a dial, read or write on a socket is the network's.
	var opErr *net.OpError
	return errors.As(err, &opErr)
}

// classify returns err wrapped with what, as ErrUnavailable when transient
// reports it is.
func classify(what string, err error, transient func(error) bool) error {
	if transient(err) {
		return unavailable(what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
