// Package planner reads fleetreset rollout plans: YAML files that say
// which Tencent Cloud CVM instances to reinstall, with which image and
// login, in which waves, under which failure budget and schedule.
//
// Load and Parse turn a plan into a *Plan: a rollout.Spec with every
// default filled in, plus the targets in wave order. A bad plan never
// yields a Plan: Parse collects every mistake it can find, each as a
// *FieldError formatted "file:line: field: what is wrong", and returns them
// together as Errors, sorted by line. Plans are decoded through yaml.Node so
// that unknown fields, repeated keys and wrong types all carry their line.
//
// Passwords are only ever referenced ({env: VAR} or {file: path}); a
// password written into the plan is an error. With Options.ResolveSecrets
// the planner reads each reference and checks the password against the
// rules of the effective API generation and each group's OS (package
// secretref), naming the reference, never the value, in any error.
//
// Options.API and Options.Endpoint override the plan's api and endpoint
// (the CLI's --api and --endpoint). The plan is validated under the
// overriding API's rules, and the Spec, with its PlanHash, records the
// effective values, so Apply refuses an override that contradicts a rollout
// applied earlier.
//
// Plans may also say what makes an instance "serving again" (issue 11):
// health checks, hooks around each reset and a load-balancer drain, set at
// the top level or per group (a group's key replaces the top level's as a
// whole), and alarms that stop the rollout (stopWhen), with onBreach
// rollback. They are validated here (templates, IDs, ranges, API 3.0 only
// features, headers that look secret), become the rollout types of
// rollout/serving.go, and are part of the plan hash. MakePreview describes
// them and adds their least time to the ETA.
//
// The plan format is documented field by field in plans/README.md, with
// the wave rounding and failure-budget rules and worked examples.
//
// The package does no network I/O and starts nothing; it reads the plan,
// the instances files it names and, when asked, the password references.
// It must not import worker, cvm or cvmsim.
package planner
