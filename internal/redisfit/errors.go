package redisfit

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// IsOOM reports whether err is Redis refusing a write because maxmemory is
// reached under noeviction ("OOM command not allowed when used memory >
// 'maxmemory'"), even wrapped. Nothing was written: the command, or the
// whole script or transaction, can be run again once memory is freed.
func IsOOM(err error) bool {
	if redis.IsOOMError(err) {
		return true
	}
	// Redis 6.2 wraps an error raised inside a script as "ERR Error running
	// script (call to f_...): ... OOM command not allowed ..."; Redis 7
	// passes the OOM code through, which IsOOMError already matches.
	var re redis.Error
	return errors.As(err, &re) && strings.Contains(re.Error(), "OOM command not allowed")
}

// Kind is the kind of a failed Redis command, the kind label of
// fleetreset_redis_errors_total.
type Kind string

// The kinds of failed commands.
const (
	// KindOOM: Redis refused a write at maxmemory (IsOOM).
	KindOOM Kind = "oom"
	// KindTimeout: no answer in time (read, write or dial timeout, pool
	// timeout, or the caller's deadline).
	KindTimeout Kind = "timeout"
	// KindConnection: Redis could not be reached or the connection broke.
	KindConnection Kind = "connection"
	// KindOther: any other error reply, and errors of no known kind.
	KindOther Kind = "other"
)

// Kinds returns every Kind, so that counters can start at zero.
func Kinds() []Kind { return []Kind{KindOOM, KindTimeout, KindConnection, KindOther} }

// Classify returns the kind of err, and false when err is not a failure
// worth counting: nil, redis.Nil (no such key), a failed WATCH transaction,
// NOSCRIPT (go-redis runs the script again with EVAL), or a cancelled
// context (the caller gave up, as every command does at shutdown).
func Classify(err error) (Kind, bool) {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, redis.TxFailedErr):
		return "", false
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		return "", false
	case errors.Is(err, context.Canceled):
		return "", false
	case IsOOM(err):
		return KindOOM, true
	case isReply(err):
		return KindOther, true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, redis.ErrPoolTimeout), isNetTimeout(err):
		return KindTimeout, true
	case errors.Is(err, redis.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return KindConnection, true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return KindConnection, true
	}
	return KindOther, true
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// NewErrorHook returns a go-redis hook that calls countFunc with the Kind of
// every failed command (see Classify), once per command or once per
// pipeline or transaction, with KindOOM when any of its commands was
// refused for memory. Install it with (*redis.Client).AddHook before the
// client is shared. countFunc must be safe for concurrent use.
func NewErrorHook(countFunc func(Kind)) redis.Hook {
	return errorHook{count: countFunc}
}

type errorHook struct{ count func(Kind) }

func (h errorHook) DialHook(next redis.DialHook) redis.DialHook {
	// A failed dial fails the command that asked for the connection, and is
	// counted there; counting it here too would count it twice.
	return next
}

func (h errorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if k, ok := Classify(err); ok && !handshake(cmd) {
			h.count(k)
		}
		return err
	}
}

func (h errorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if k, ok := pipelineKind(err, cmds); ok {
			h.count(k)
		}
		return err
	}
}

// pipelineKind is the kind of a pipeline's failure: oom when any command
// was refused for memory (a transaction then fails as a whole with
// EXECABORT), else the kind of its first countable error.
func pipelineKind(err error, cmds []redis.Cmder) (Kind, bool) {
	var first error
	all := true
	for _, c := range cmds {
		if handshake(c) {
			continue
		}
		all = false
		e := c.Err()
		if IsOOM(e) {
			return KindOOM, true
		}
		if _, ok := Classify(e); ok && first == nil {
			first = e
		}
	}
	if first == nil && !all {
		// go-redis sets a failed round trip's error on every command; this
		// is for the case it did not.
		first = err
	}
	return Classify(first)
}

// handshake reports whether cmd is one go-redis sends on each new
// connection and whose refusal it ignores: CLIENT SETINFO (Redis 7.2+) and
// CLIENT MAINT_NOTIFICATIONS (Redis 8), which an older server answers with
// "ERR unknown subcommand". They are not failures of ours.
func handshake(cmd redis.Cmder) bool {
	args := cmd.Args()
	if len(args) < 2 {
		return false
	}
	name, _ := args[0].(string)
	sub, _ := args[1].(string)
	return strings.EqualFold(name, "client") && (strings.EqualFold(sub, "setinfo") || strings.EqualFold(sub, "maint_notifications"))
}
