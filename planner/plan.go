package planner

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/secretref"
	"gopkg.in/yaml.v3"
)

// Version is the plan format version this package reads (`version: 1`).
const Version = 1

// Defaults filled into a Spec when the plan leaves a field out.
const (
	// APIDefault is the API generation: API 3.0, the one Tencent maintains
	// (v2 is documented as legacy and no longer updated).
	APIDefault = "v3"
	// OSDefault is the OS family of a group that does not say.
	OSDefault = "linux"
	// ResetRateLimit and DescribeRateLimit are the documented per-account
	// API limits in calls per second (ResetInstance 10/s, DescribeInstances
	// 40/s). A plan may not ask for more unless it sets
	// rateLimit.unsafeAboveApiLimit, which only helps after a quota raise.
	ResetRateLimit    = 10.0
	DescribeRateLimit = 40.0
	// ResetRateDefault and DescribeRateDefault are the fleet-wide call
	// rates when the plan does not set rateLimit: the API limits.
	ResetRateDefault    = ResetRateLimit
	DescribeRateDefault = DescribeRateLimit
	// VerifyIntervalDefault is how often a reset instance is polled.
	VerifyIntervalDefault = 10 * time.Second
	// VerifyTimeoutDefault bounds the wait for a reset instance to come back
	// on the new image. Reinstalls routinely take several minutes and
	// 5 minutes has proved too short in practice (terraform-provider-
	// tencentcloud#268 moved to 15), so the default leaves headroom.
	VerifyTimeoutDefault = 20 * time.Minute
	// RetryAttemptsDefault and RetryDeadlineDefault bound the retries of one
	// instance's reset call on retryable errors (SystemBusy, throttling,
	// operation in progress).
	RetryAttemptsDefault = 20
	// MaxRate is the highest rate a plan may ask for, even with
	// unsafeAboveApiLimit: the fleet-wide limiter's ceiling,
	// ratelimit.MaxRate (plan parsing imports no limiter; a test keeps the
	// two equal).
	MaxRate = 1000
	// MinRate is the lowest: one call in 1,000 s (16m40s). Slower rollouts
	// are cut into waves with soaks instead; a rate far below it would
	// make durations overflow.
	MinRate              = 0.001
	RetryDeadlineDefault = 30 * time.Minute
	// OnBreachDefault is what a breached failure budget does: pause, so a
	// human decides; "abort" must be asked for.
	OnBreachDefault = "pause"
)

// Defaults of health, hooks, drain and alarms (rollout/serving.go).
const (
	// HealthIntervalDefault is the time between probes of one instance.
	HealthIntervalDefault = 5 * time.Second
	// HealthTimeoutDefault bounds one probe; it must stay below the interval.
	HealthTimeoutDefault = 2 * time.Second
	// HealthyThresholdDefault is the passing probes in a row that make an
	// instance healthy.
	HealthyThresholdDefault = 3
	// HealthDeadlineDefault is how long after its image is verified an
	// instance may take to become healthy. The initial delay defaults to 0.
	HealthDeadlineDefault = 10 * time.Minute
	// HookTimeoutDefault bounds one hook, waiting included. Hooks abandon
	// the instance on failure (rollout.HookAbandon) unless they say continue.
	HookTimeoutDefault = 5 * time.Minute
	// DrainTimeDefault is the wait at weight 0 before an instance is reset.
	DrainTimeDefault = 30 * time.Second
	// AlarmIntervalDefault is how often alarms are read while a wave soaks.
	// An alarm that cannot be read pauses the rollout (rollout.AlarmErrorPause)
	// unless stopWhen.onError says ignore.
	AlarmIntervalDefault = 30 * time.Second
	// CommandShell and CommandPowerShell are TAT's command types: SHELL,
	// the default on linux, and POWERSHELL, the default on windows.
	CommandShell      = "SHELL"
	CommandPowerShell = "POWERSHELL"
	// MaxCommandSize is the most a command hook's content may take
	// base64-encoded: TAT RunCommand's Content limit (64 KiB).
	MaxCommandSize = 64 << 10
)

// Options control Parse and Load. The zero value parses without touching
// secrets and reads files and the environment through the os package.
type Options struct {
	// ResolveSecrets makes the planner read every password reference and
	// check the password against the rules of the effective API generation and
	// each group's OS. The CLI sets it for validate, plan and run; workers
	// check again at call time. Errors name the reference, never the value.
	ResolveSecrets bool
	// LookupEnvFunc reads environment variables. Defaults to os.LookupEnv.
	LookupEnvFunc func(string) (string, bool)
	// ReadFileFunc reads the plan (Load), instances files and password
	// files. Defaults to secretref.ReadFile (regular files only, capped).
	ReadFileFunc func(string) ([]byte, error)
	// API, when its Value is set, replaces the plan's api ("v2" or "v3"):
	// the plan is validated under that generation's rules (password rules,
	// image type, instance ID forms, the fields v2 lacks), and Spec.API and
	// Spec.PlanHash record it, so a rollout keeps the API it was applied
	// with. Defaults to the plan's api.
	API Override
	// Endpoint, when its Value is set, replaces the plan's endpoint the
	// same way: it must be an http(s) base URL without credentials, query
	// or fragment. Defaults to the plan's endpoint.
	Endpoint Override
	// Selected holds, by group index, the instances each group's select
	// matched: what the caller listed with DescribeInstances and the
	// filters of Plan.Selections (Selection.Requests). A group with a
	// select and no entry here is left unresolved (Plan.Unresolved).
	// Protected and excluded instances may be included: the planner
	// removes them.
	Selected map[int][]Match
}

// Override is a value from outside the plan, such as a command-line flag,
// that replaces a plan field.
type Override struct {
	// Value replaces the plan's value; empty keeps the plan's.
	Value string
	// From names where Value comes from in messages, like "--api".
	// Defaults to "the override".
	From string
}

// from returns what messages call the override.
func (o Override) from() string {
	if o.From == "" {
		return "the override"
	}
	return o.From
}

// OverrideError is a bad override (Options.API, Options.Endpoint): a
// mistake of the command line or environment, not of the plan.
type OverrideError struct {
	// From names the override, e.g. "--endpoint".
	From, Msg string
}

func (e *OverrideError) Error() string { return e.From + ": " + e.Msg }

// validate checks the overrides; they are not in the plan, so their
// mistakes are not FieldErrors.
func (o Options) validate() error {
	switch o.API.Value {
	case "", "v2", "v3":
	default:
		return &OverrideError{From: o.API.from(), Msg: fmt.Sprintf("unknown API %q: want v3 (API 3.0) or v2 (legacy cvm.api.qcloud.com)", o.API.Value)}
	}
	if e := o.Endpoint.Value; e != "" {
		if msg := endpointProblem(e); msg != "" {
			return &OverrideError{From: o.Endpoint.from(), Msg: msg}
		}
	}
	return nil
}

func (o Options) lookupEnv() func(string) (string, bool) {
	if o.LookupEnvFunc != nil {
		return o.LookupEnvFunc
	}
	return os.LookupEnv
}

func (o Options) readFile() func(string) ([]byte, error) {
	if o.ReadFileFunc != nil {
		return o.ReadFileFunc
	}
	return secretref.ReadFile
}

// Plan is a parsed, validated and expanded plan.
type Plan struct {
	// Spec is the rollout: Spec.ID is the plan's name, defaults are filled
	// in, Spec.Waves are the expanded waves (a repeated last entry appears
	// once per wave it produced) and Spec.PlanHash identifies the content.
	Spec rollout.Spec
	// Targets are every instance of the plan in wave order: all of wave 0,
	// then wave 1, and so on; within a wave in plan order (groups top to
	// bottom, a group's inline instances before its instancesFile), or by
	// zone first when the plan sets zoneOrder. Wave and Group are set.
	Targets []rollout.Target
	// Warnings are things that are allowed but probably not meant, such as
	// wave entries that no instance reaches. They use the same format as
	// errors.
	Warnings Errors
	// Overrides names the Spec fields that an Options override changed,
	// by plan key ("api", "endpoint"), with where the value came from
	// (Override.From). An override equal to the plan's value is not listed.
	// Nil when the plan's own values hold.
	Overrides map[string]string
	// Selections are the groups' selects, in group order; nil for a plan
	// without select. Until resolved (Options.Selected) their groups hold
	// only their listed instances: see Unresolved.
	Selections []Selection
	// ProtectTag is the tag, "KEY=VALUE", that keeps an instance out of
	// every selection: the plan's protectTag or ProtectTagDefault.
	ProtectTag string
	// Source is what a plan with a schedule and a select was read from,
	// for each occurrence to resolve the selection again (apply stores it
	// with the rollout); nil for other plans, whose occurrences repeat the
	// targets of the first.
	Source *rollout.PlanSource
}

// WaveTargets returns the targets of wave i, a sub-slice of p.Targets.
// It returns nil when i is out of range.
func (p *Plan) WaveTargets(i int) []rollout.Target {
	if i < 0 || i >= len(p.Spec.Waves) {
		return nil
	}
	start := 0
	for _, w := range p.Spec.Waves[:i] {
		start += w.Size
	}
	return p.Targets[start : start+p.Spec.Waves[i].Size]
}

// Load reads the plan at path and parses it with Parse. Relative paths in
// the plan (instancesFile, password files) are relative to path's directory.
func Load(path string, opts Options) (*Plan, error) {
	data, err := opts.readFile()(path)
	if err != nil {
		return nil, fmt.Errorf("planner: load %s: %w", path, err)
	}
	return Parse(path, data, opts)
}

// Parse parses, validates and expands the plan in data; filename names it
// in errors and anchors its relative paths. When the plan has mistakes,
// Parse returns a nil Plan and an Errors holding every one found, each as
// "file:line: field: what is wrong". Parse never starts anything and is
// safe for concurrent use.
//
// With Options.API or Options.Endpoint set, the plan is read as if it said
// that API or endpoint; a mistake only the override causes says so, like
// "plans/web.yaml:9: password: ... (api v2 from --api)". A bad override is
// an error of its own, not an Errors.
func Parse(filename string, data []byte, opts Options) (*Plan, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	p := newParser(filename, opts)
	plan := p.run(data)
	if len(p.list) > 0 {
		return nil, sortErrors(p.list, filename)
	}
	plan.Warnings = sortErrors(p.warns, filename)
	plan.Overrides = p.overrides
	plan.Selections = p.selections
	plan.ProtectTag = p.raw.protectTag
	if plan.Spec.Schedule != "" && len(p.selections) > 0 {
		plan.Source = p.source(data)
	}
	return plan, nil
}

// source keeps what a scheduled plan with a select was read from (see
// rollout.PlanSource): its text and its instances files, never a password
// or user data file, and without their comments (a plan's fields cannot
// hold a secret, but a comment can: "# old password: ..."). Paths are made
// absolute, so that the plan read again on a worker, wherever it runs,
// resolves its password and user data files to the paths apply did.
func (p *parser) source(data []byte) *rollout.PlanSource {
	abs := func(path string) string {
		if a, err := filepath.Abs(path); err == nil {
			return a
		}
		return path // the working directory is gone: as written
	}
	plan, err := withoutComments(data)
	if err != nil {
		return nil // not after a successful parse of the same text
	}
	files := map[string][]byte{abs(p.file): plan}
	for path, d := range p.files {
		files[abs(path)] = instancesWithoutComments(d)
	}
	return &rollout.PlanSource{Path: abs(p.file), Files: files}
}

// withoutComments re-encodes a YAML document without its comments.
func withoutComments(data []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	var strip func(n *yaml.Node)
	strip = func(n *yaml.Node) {
		n.HeadComment, n.LineComment, n.FootComment = "", "", ""
		for _, c := range n.Content {
			strip(c)
		}
	}
	strip(&doc)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// instancesWithoutComments cuts the comments out of an instances file,
// keeping its lines where they were.
func instancesWithoutComments(data []byte) []byte {
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		if c := commentStart(line); c >= 0 {
			lines[i] = line[:c]
		}
	}
	return []byte(strings.Join(lines, "\n"))
}
