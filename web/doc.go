// Package web serves fleetreset's operator UI over HTTP: our own rollout
// pages (server-rendered, refreshed by a few lines of JavaScript), a JSON
// API of the same data, the asynq web UI (asynqmon) under /monitoring/, and
// Prometheus /metrics when given a handler for it.
//
// A rollout page and /api/rollouts/NAME search and page a rollout's
// instances on the server (id, wave, state, code, page, limit; see
// search.go), and /rollouts/NAME/instances/ID shows one instance. A refresh
// reads the rollout's counters, its in-flight and held sets and one page of
// instances (ledger.Page), never every instance, so its cost stays the same
// from a thousand instances to hundreds of thousands.
//
// Safe by default:
//
//   - Read-only unless Config.AllowActions: without it the pause, resume,
//     approve, abort and retry-failed buttons are not shown and their POST
//     endpoints answer 403, and asynqmon runs in its read-only mode (it
//     refuses every request but GET).
//   - Every non-safe request is checked against cross-site request forgery
//     with net/http's CrossOriginProtection (Sec-Fetch-Site / Origin), so a
//     page on another site cannot press our buttons through the operator's
//     browser. Config.Hosts, when set, refuses requests for any other Host
//     header, which defeats DNS rebinding against a UI bound to 127.0.0.1.
//   - Optional HTTP basic auth (Config.BasicAuth) covers every path,
//     /metrics and /monitoring/ included.
//   - Nothing secret is ever rendered: pages and the JSON API are built from
//     view types that copy known fields only (a password appears as its
//     reference, a webhook as its host), and asynqmon shows task payloads
//     through tasks.Describe and never shows task results.
//
// The handler is safe for concurrent use; Close releases asynqmon's Redis
// connections.
package web
