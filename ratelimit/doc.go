// Package ratelimit paces calls to a rate-limited API across every fleetreset
// worker process, so that the fleet as a whole stays under the API's quota.
//
// The Tencent Cloud CVM API limits each (account, action, region) to a
// number of requests per second — ResetInstance 10/s, DescribeInstances
// 40/s — counted per whole second of arrival at the server, and answers
// RequestLimitExceeded beyond that. A [Limiter] hands out one call at a time
// for a budget named by [Key]:
//
//   - [Limiter.Wait] blocks until the caller may make one call, or ctx ends.
//     It never polls: it reserves the next free slot and sleeps until then,
//     so waiters are served in arrival order.
//   - [Limiter.Throttled] reports that the API answered RequestLimitExceeded
//     anyway (someone else shares the account). Every process sharing the
//     budget then slows down at once (multiplicative decrease, ×[BackoffDefault])
//     and speeds up again gradually (additive increase, +[RecoveryDefault] of
//     the rate per second).
//
// Two implementations share the interface. [Redis] is the fleet-wide one: a
// single Lua script grants slots using Redis's own clock, so every process
// agrees on time whatever its host clock says. [Local] is for the
// single-process mode and uses golang.org/x/time/rate.
//
// # Guarantees
//
// For a budget used at rate r, with N = max(1, floor(r)):
//
//   - No sliding one-second window holds more than N grants: a grant needs
//     the N-th most recent grant to be at least 1s + [Config.Guard] old. The
//     guard absorbs latency jitter between "granted" and "arrived at the API",
//     so the server's per-second counter cannot exceed N either.
//   - Consecutive grants are at least 1/r apart (GCRA with burst 1), so a
//     busy budget is used evenly (about 1s/(1s+Guard), 98% with the default
//     guard) instead of in bursts that the next second then pays for.
//
// Grant times are slot times; a caller whose ctx ends after reserving simply
// leaves its slot unused, which wastes budget but never exceeds it. Wait
// sleeps towards the slot itself, not merely for the delay the script
// returned: it subtracts how much later than usual the Redis reply came
// back, and when it still wakes more than Guard/2 after the slot (a process
// starved of CPU, a GC pause) it gives that slot up and reserves another,
// because a late call would land in the same second as the calls granted
// after it. A Wait
// whose slot lies beyond ctx's deadline does not reserve at all and fails
// at once with an error wrapping [context.DeadlineExceeded].
package ratelimit
