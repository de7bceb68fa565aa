// Package rollout holds the data model of a validated rollout (Spec, Group,
// Wave, Budget, Window, Target) and the pure arithmetic the rest of
// fleetreset runs it with:
//
//   - ParseSize, SplitWaves and Expand cut a fleet into waves with Ansible
//     `serial` semantics: the last size repeats until every instance is
//     placed, percentages are of the whole plan and round up, and no wave is
//     empty.
//   - Budget.Breached and Budget.Allowed judge a failure budget from counts
//     ("exceeded", never "reached").
//   - Window.Contains and Window.Next answer maintenance-window questions for
//     a time the caller passes in.
//
// The package does no I/O and never reads the clock: every function is
// deterministic in its arguments, safe for concurrent use, and depends on
// the standard library only.
package rollout
