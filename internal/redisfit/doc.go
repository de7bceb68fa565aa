// Package redisfit owns one question: is this Redis fit to hold a fleet's
// ledger, queues and rate budget, and what did it just refuse?
//
//   - CheckEviction refuses a Redis that may evict keys. An evicting Redis
//     (any allkeys-* or volatile-* maxmemory-policy) drops ledger entries,
//     counters and tasks without an error, and a rollout whose counters lost
//     a key waits forever for instances it no longer knows about. The policy
//     is read with CONFIG GET, or from INFO memory where CONFIG is disabled
//     or renamed (managed Redis); when neither tells, CheckEviction warns
//     and lets the caller go on.
//   - IsOOM and Classify name what a failed command means; NewErrorHook
//     counts failed commands by Kind (oom, timeout, connection, other) for
//     the metric fleetreset_redis_errors_total.
//   - SetLogger routes go-redis's own log lines, which it otherwise prints
//     as plain text on stderr, through a *slog.Logger at warn level with
//     component=redis, so that --log-format json stays JSON.
//
// The package imports go-redis and the standard library only.
package redisfit
