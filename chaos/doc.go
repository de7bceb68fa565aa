// Package chaos holds fleetreset's crash and fault tests (issues 4 and 7):
// real `fleetreset` processes, built once per test binary, run rollouts
// against an in-process CVM simulator while the tests SIGKILL and SIGTERM
// workers in the middle of API calls, kill `fleetreset run` and run it
// again, kill and freeze the Redis server, and exhaust the account's
// balance. Every test checks the simulator's own counts: no instance reset
// twice, none forgotten.
//
// double_reset_test.go (issue 16) meets instances in the middle of 30-60 s
// reinstalls (cvmsim.Config.ResetDurationMax) after an abort and re-apply,
// a retry of VerifyTimeout failures, a `run` killed and re-run from
// another directory, a Redis restored from an older snapshot or lost
// entirely, and a reset request held in transit past the reconcile grace.
// Each takes 2-3 minutes, most of it waiting for reinstalls.
//
// sentinel_test.go (issue 13) runs a primary, a replica and three
// sentinels, reached only through REDIS_URL's redis+sentinel:// form, and
// fails the primary over mid-rollout (SENTINEL FAILOVER, SIGKILL, and a
// failover that loses writes the old primary acknowledged). About 2
// minutes each, in parallel; the long form has 1,000 instances and three
// failovers.
//
// The package has no code of its own; the tests are in its _test.go files.
// By default they run in a short form sized for CI (a few minutes in all,
// most of it waiting for asynq to recover the tasks of killed workers,
// which it does 60-120 s after a kill). The long form kills more often,
// with larger fleets and a 30 s Redis outage:
//
//	FLEETRESET_TEST_REDIS=127.0.0.1:6379 go test -v -timeout 60m ./chaos/ -chaos.long
//
// (or FLEETRESET_CHAOS_LONG=1). The tests need `go` to build the binary
// and `redis-server` on PATH for the Redis outage tests.
package chaos
