// Package health decides whether a reinstalled instance serves again.
//
// A Prober runs a group's checks (rollout.Health) against many instances at
// once and returns one Result per instance; a Tracker turns a sequence of
// those results into an Outcome (Healthy, Unhealthy, Wait or Undecided)
// from a small state the caller persists between probes. The package does
// no scheduling and keeps no state of its own: the worker probes, records
// the State, and comes back at the time Tracker.Next returns.
//
// # Verdicts
//
// Every probe ends in one of three verdicts, and the line between Fail and
// Inconclusive is what keeps a broken prober from failing a healthy fleet:
//
//   - Fail: the instance's fault. A refused connection, a timeout (connect,
//     response or body), a reset or closed connection, a TLS failure, a
//     status outside the accepted set, a body without the wanted substring,
//     the CLB reporting the target unhealthy or not reporting it at all, the
//     TAT agent Offline or unknown.
//   - Inconclusive: it proves nothing about the instance. The prober's own
//     network (ENETUNREACH or EHOSTUNREACH from the local stack, no route),
//     the DNS lookup of the probe's host name failing, the prober running
//     out of file descriptors (EMFILE, ENFILE), local ports (EADDRNOTAVAIL)
//     or buffers (ENOBUFS), the caller's context ending, the CLB or TAT
//     reader returning an error, and a template that cannot be expanded for
//     the instance (a plan error, not the instance's).
//   - Pass: everything else the check asked for held.
//
// EHOSTUNREACH is treated as the prober's problem even though a dead host
// on the prober's own subnet can cause it: in a VPC the virtual switch
// answers for the host, so a dead instance times out instead, and a pause
// with a clear reason is cheaper than failing a wave for a routing problem.
//
// # Sockets
//
// HTTP and TCP probes hold at most Prober.MaxInFlight sockets at once across
// one ProbeAll call, each for at most rollout.Health.Timeout; HTTP requests
// never reuse a connection (each probe proves a fresh one) and never follow
// redirects (a 3xx is judged as it is). CLB and agent checks cost API calls,
// not sockets, and are batched: one TargetHealth call per listener and one
// AgentOnline call per AgentBatch instances, whatever the number of checks.
package health
