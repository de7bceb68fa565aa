// Package ledger keeps the durable state of rollouts in Redis: the rollout
// record (spec, state, current wave), one hash per instance with its
// position in the reset protocol, per-wave and overall counters, and the
// per-instance claims that keep two rollouts off one machine.
//
// Every state change is one Lua script, so concurrent workers, duplicate
// deliveries and control commands from other machines see a consistent
// ledger. The reset protocol per instance is:
//
//	pending ──Begin──▶ calling(token) ──Called──▶ resetting(request_id) ──Finish──▶ succeeded | failed
//	   ▲                   │  ▲                                                     (terminal)
//	   └──────Release──────┘  └── Retake (after a redelivery proved the call never landed)
//
// "calling" is written before the API call (an intent, fenced by a token
// from a Redis counter). A worker that finds an instance in "calling" does
// not call the API again; it reconciles with DescribeInstances. Only a
// fenced Retake, after the instance visibly shows no trace of the call, can
// lead to a second call. Terminal states are succeeded, skipped, failed,
// ambiguous (the outcome could not be established; a human decides) and
// cancelled (the rollout was aborted before the instance was called).
//
// Keys live under Config.Prefix (default "fleetreset:"); scripts.go lists them,
// retention.go those of retention (Prune).
package ledger
