package cvmsim

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/internal/clock"
)

// Defaults for Config and Faults. A zero field means the matching default.
const (
	// SecretIDDefault is the SecretId the simulator accepts by default.
	SecretIDDefault = "AKIDsimulator"
	// SecretKeyDefault is the SecretKey the simulator accepts by default.
	SecretKeyDefault = "simulator-secret-key"
	// RegionDefault is the region the simulated instances live in.
	RegionDefault = "ap-guangzhou"
	// ResetDurationDefault is how long a simulated reinstall takes.
	ResetDurationDefault = 2 * time.Second
	// ReplayWindowDefault is the allowed clock skew of signed requests; the
	// API 3.0 docs say 5 minutes (legacy pages say 2 hours or 5 minutes).
	ReplayWindowDefault = 5 * time.Minute
	// ResetRateLimitDefault is the documented ResetInstance limit, per second.
	ResetRateLimitDefault = 10
	// DescribeRateLimitDefault is the documented DescribeInstances limit, per second.
	DescribeRateLimitDefault = 40
	// SeedDefault seeds the fault and RequestId random sources.
	SeedDefault int64 = 1
	// SystemBusyCodeV3Default is the API 3.0 code answered for an injected
	// SystemBusy; API 3.0 has no documented SystemBusy code ([U]).
	SystemBusyCodeV3Default = "InternalError"
	// CommandDurationDefault is how long a simulated TAT command runs.
	CommandDurationDefault = 200 * time.Millisecond
	// TaskDurationDefault is how long a CLB weight change stays a running
	// task (DescribeTaskStatus 2) before it takes effect.
	TaskDurationDefault = 100 * time.Millisecond
	// ServiceRateLimitDefault is the documented limit of the CLB, TAT and
	// Cloud Monitor actions, per action and second.
	ServiceRateLimitDefault = 20
	// WeightDefault is the weight of targets registered by
	// Listener.EveryInstance and of weight changes that name none, as in the
	// CLB docs.
	WeightDefault = 10
)

// Config configures a Server. The zero value of every field means its
// default, so Config{} is a working simulator with no faults.
type Config struct {
	// SecretID is the only SecretId the simulator knows; any other answers
	// AuthFailure.SecretIdNotFound (v2 code 4104).
	// Defaults to SecretIDDefault.
	SecretID string
	// SecretKey is the key signatures are checked with.
	// Defaults to SecretKeyDefault.
	SecretKey string
	// Region is the region requests must name (X-TC-Region or Region). v2
	// also accepts its legacy short code, e.g. "gz" for ap-guangzhou.
	// Defaults to RegionDefault.
	Region string
	// Regions are further regions the simulator serves: an instance whose
	// Instance.Region names one lives there, and an action answers only
	// the instances of its request's region.
	Regions []string
	// Clock tells the simulator the time: request timestamps, reinstall
	// progress and rate-limit seconds all come from it. If it also has a
	// method After(time.Duration) <-chan time.Time, Faults.Latency waits on
	// it, so a fake clock drives latency too.
	// Defaults to the wall clock.
	Clock clock.Clock
	// ResetDuration is how long an accepted reinstall stays OPERATING. It is
	// evaluated lazily from Clock whenever state is read; no goroutines.
	// Defaults to ResetDurationDefault.
	ResetDuration time.Duration
	// ResetDurationMax, when above ResetDuration, makes each accepted
	// reinstall last a duration drawn uniformly from [ResetDuration,
	// ResetDurationMax] instead, from a random source seeded by Faults.Seed
	// apart from the fault dice (so it shifts no fault draw, and a run with
	// the same calls in the same order repeats its durations). It must not
	// be below the effective ResetDuration.
	// Defaults to 0: every reinstall lasts exactly ResetDuration.
	ResetDurationMax time.Duration
	// ReplayWindow is the allowed |server time - request timestamp| for all
	// signature kinds; a signed v2/v1 Nonce seen within it is a replay.
	// Defaults to ReplayWindowDefault.
	ReplayWindow time.Duration
	// Images lists the image IDs that exist. A well-formed ID not in the
	// list answers InvalidImageId.NotFound.
	// Defaults to empty: every well-formed img-xxxxxxxx exists.
	Images []string
	// HealthPort, when not 0, gives every instance a health endpoint: its
	// private IP becomes a loopback address of its own (127.1.x.y, from its
	// position among the instances; never 127.0.0.1) and, once Start was
	// called, the simulator listens on PrivateIP:HealthPort while the
	// instance is up (RUNNING and not reinstalling), answering GET /healthz.
	// Negative picks a free port at Start (Server.HealthPort tells which).
	// Defaults to 0: no health endpoints, private IPs in 10.0.0.0/8.
	HealthPort int
	// CommandDuration is how long a TAT command runs before it ends.
	// Defaults to CommandDurationDefault.
	CommandDuration time.Duration
	// TaskDuration is how long a CLB weight change runs as an async task
	// (DescribeTaskStatus Status 2) before it takes effect (Status 0).
	// Defaults to TaskDurationDefault.
	TaskDuration time.Duration
	// LoadBalancers are the simulated CLB instances.
	// Defaults to none.
	LoadBalancers []LoadBalancer
	// Faults are the injected failures; change them at run time with
	// Server.SetFaults.
	// Defaults to no faults.
	Faults
}

// Faults are the failures the simulator injects. The zero value injects
// nothing. Probabilities are in [0, 1] and drawn from a math/rand source
// seeded with Seed, so a run with the same calls in the same order is
// repeatable.
type Faults struct {
	// SystemBusyRate is the probability that a ResetInstance(s) call that
	// passed validation answers SystemBusy without changing state (v2
	// codeDesc OperationFail.SystemBusy, v3 SystemBusyCodeV3).
	// Defaults to 0.
	SystemBusyRate float64
	// SystemBusyFirst makes the first SystemBusyFirst reset calls of each
	// instance that passed validation answer SystemBusy.
	// Defaults to 0.
	SystemBusyFirst int
	// SystemBusyCodeV3 is the API 3.0 Error.Code of an injected SystemBusy.
	// Defaults to SystemBusyCodeV3Default.
	SystemBusyCodeV3 string
	// ResetRateLimit is the number of ResetInstance(s) calls accepted per
	// second of arrival time, per action name; the rest answer
	// RequestLimitExceeded (v2 code 4400) with no state change. Negative
	// means unlimited.
	// Defaults to ResetRateLimitDefault.
	ResetRateLimit int
	// DescribeRateLimit is the same for DescribeInstances.
	// Defaults to DescribeRateLimitDefault.
	DescribeRateLimit int
	// BalanceAfter makes every reset after the first BalanceAfter accepted
	// ones (fleet-wide) answer InvalidAccount.InsufficientBalance (v2
	// OperationConstraints.AccountBalanceNotEnough, code 5300).
	// Defaults to 0: never.
	BalanceAfter int
	// FailRate is the probability that an accepted reinstall ends FAILED:
	// image unchanged, LatestOperationState FAILED, v2 status back to 2/4.
	// Defaults to 0.
	FailRate float64
	// FailIDs are instances whose every accepted reinstall ends FAILED, as
	// with FailRate.
	// Defaults to none.
	FailIDs []string
	// Latency delays every API request before it is processed. A request
	// whose context ends during the wait is abandoned with no effect.
	// Defaults to 0.
	Latency time.Duration
	// DropRate is the probability that the connection is closed without an
	// answer (see DropAfterApply).
	// Defaults to 0.
	DropRate float64
	// DropAfterApply drops the answer after the request took effect, like a
	// network losing the response of an accepted call; otherwise the request
	// is dropped before it is processed.
	// Defaults to false.
	DropAfterApply bool
	// ServerErrorRate is the probability that a request answers HTTP 502
	// with an HTML body (a gateway error) and no state change.
	// Defaults to 0.
	ServerErrorRate float64
	// EchoParams makes every error answer quote the Password parameter of
	// the request (v2 password, API 3.0 LoginSettings.Password), as a
	// careless upstream might: appended to the message raw, JSON-escaped
	// (\u0026), HTML-escaped (&amp; &#39;), as hex entities (&#x27;),
	// percent-encoded and cut in half; also in the body of a
	// ServerErrorRate 502. Requests without a password are answered as
	// usual. It tests that a client never shows upstream text verbatim.
	// Defaults to false.
	EchoParams bool
	// UnhealthyRate is the probability that an instance answers its health
	// endpoint with 503 (and is Dead to the CLB) after a successful
	// reinstall, decided when the reset is accepted.
	// Defaults to 0.
	UnhealthyRate float64
	// UnhealthyIDs are instances that come back unhealthy from every
	// successful reinstall.
	// Defaults to none.
	UnhealthyIDs []string
	// AgentOfflineIDs are instances whose TAT agent is always Offline.
	// Defaults to none.
	AgentOfflineIDs []string
	// CommandFailIDs are instances on which every TAT command ends FAILED
	// with exit code 1.
	// Defaults to none.
	CommandFailIDs []string
	// ServiceRateLimit is the per-second limit of each CLB, TAT and Cloud
	// Monitor action, counted like ResetRateLimit. Negative means unlimited.
	// Defaults to ServiceRateLimitDefault.
	ServiceRateLimit int
	// LoadBalancerBusy makes a weight change on a load balancer that still
	// runs an earlier task answer FailedOperation.ResourceInOperating, as
	// the real CLB is believed to do [U].
	// Defaults to false.
	LoadBalancerBusy bool
	// Seed seeds the random source of the probabilities above and of
	// RequestIds. Changing it with SetFaults restarts the source.
	// Defaults to SeedDefault.
	Seed int64
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	c.SecretID = cmp.Or(c.SecretID, SecretIDDefault)
	c.SecretKey = cmp.Or(c.SecretKey, SecretKeyDefault)
	c.Region = cmp.Or(c.Region, RegionDefault)
	c.Clock = clock.Or(c.Clock)
	c.ResetDuration = cmp.Or(c.ResetDuration, ResetDurationDefault)
	c.ReplayWindow = cmp.Or(c.ReplayWindow, ReplayWindowDefault)
	c.CommandDuration = cmp.Or(c.CommandDuration, CommandDurationDefault)
	c.TaskDuration = cmp.Or(c.TaskDuration, TaskDurationDefault)
	c.Faults = c.Faults.withDefaults()
	return c
}

// withDefaults returns f with every zero field replaced by its default.
func (f Faults) withDefaults() Faults {
	f.SystemBusyCodeV3 = cmp.Or(f.SystemBusyCodeV3, SystemBusyCodeV3Default)
	f.ResetRateLimit = cmp.Or(f.ResetRateLimit, ResetRateLimitDefault)
	f.DescribeRateLimit = cmp.Or(f.DescribeRateLimit, DescribeRateLimitDefault)
	f.ServiceRateLimit = cmp.Or(f.ServiceRateLimit, ServiceRateLimitDefault)
	f.Seed = cmp.Or(f.Seed, SeedDefault)
	return f
}

// Validate reports the first invalid field of c, naming it. New panics on a
// Config that does not validate, so call Validate on user input first.
func (c Config) Validate() error {
	if c.ResetDuration < 0 {
		return errors.New("cvmsim: ResetDuration must not be negative")
	}
	if c.ReplayWindow < 0 {
		return errors.New("cvmsim: ReplayWindow must not be negative")
	}
	if d := cmp.Or(c.ResetDuration, ResetDurationDefault); c.ResetDurationMax != 0 && c.ResetDurationMax < d {
		return fmt.Errorf("cvmsim: ResetDurationMax (%s) must be 0 or at least ResetDuration (%s)", c.ResetDurationMax, d)
	}
	if c.CommandDuration < 0 {
		return errors.New("cvmsim: CommandDuration must not be negative")
	}
	if c.TaskDuration < 0 {
		return errors.New("cvmsim: TaskDuration must not be negative")
	}
	if c.HealthPort > 65535 {
		return fmt.Errorf("cvmsim: HealthPort %d is not a TCP port", c.HealthPort)
	}
	if err := validateLoadBalancers(c.LoadBalancers); err != nil {
		return err
	}
	for _, img := range c.Images {
		if !validImageID(img) {
			return fmt.Errorf("cvmsim: Images: %q is not img- followed by 8 lower-case letters or digits", img)
		}
	}
	if err := c.Faults.Validate(); err != nil {
		return err
	}
	return nil
}

// Validate reports the first invalid field of f, naming it.
func (f Faults) Validate() error {
	rates := []struct {
		name string
		p    float64
	}{
		{"SystemBusyRate", f.SystemBusyRate},
		{"FailRate", f.FailRate},
		{"DropRate", f.DropRate},
		{"ServerErrorRate", f.ServerErrorRate},
		{"UnhealthyRate", f.UnhealthyRate},
	}
	for _, r := range rates {
		// The negated form also rejects NaN.
		if !(r.p >= 0 && r.p <= 1) {
			return fmt.Errorf("cvmsim: %s must be within [0, 1], got %v", r.name, r.p)
		}
	}
	if f.SystemBusyFirst < 0 {
		return errors.New("cvmsim: SystemBusyFirst must not be negative")
	}
	if f.BalanceAfter < 0 {
		return errors.New("cvmsim: BalanceAfter must not be negative")
	}
	if f.Latency < 0 {
		return errors.New("cvmsim: Latency must not be negative")
	}
	for name, ids := range map[string][]string{"FailIDs": f.FailIDs, "UnhealthyIDs": f.UnhealthyIDs, "AgentOfflineIDs": f.AgentOfflineIDs, "CommandFailIDs": f.CommandFailIDs} {
		for _, id := range ids {
			if !validInstanceID(id) {
				return fmt.Errorf("cvmsim: %s: %q is not ins- followed by 8 lower-case letters or digits", name, id)
			}
		}
	}
	return nil
}

// RegisterFlags registers every Config and Faults knob on fs, writing into
// cfg. Each flag's default is cfg's current value, or the documented default
// where that is zero, so --help shows the effective values. Clock has no flag.
func RegisterFlags(fs *flag.FlagSet, cfg *Config) {
	d := cfg.withDefaults()
	fs.StringVar(&cfg.SecretID, "secret-id", d.SecretID, "the only SecretId the simulator accepts")
	fs.StringVar(&cfg.SecretKey, "secret-key", d.SecretKey, "the SecretKey signatures are verified with")
	fs.StringVar(&cfg.Region, "region", d.Region, "region requests must name (v2 also accepts its short code, e.g. gz)")
	fs.DurationVar(&cfg.ResetDuration, "reset-duration", d.ResetDuration, "how long an accepted reinstall stays OPERATING (v2 status 14)")
	fs.DurationVar(&cfg.ResetDurationMax, "reset-duration-max", d.ResetDurationMax, "when above -reset-duration, each reinstall lasts a random duration in [-reset-duration, this], drawn from -seed (0: exactly -reset-duration)")
	fs.DurationVar(&cfg.ReplayWindow, "replay-window", d.ReplayWindow, "allowed request timestamp skew; a Nonce reused within it is rejected as a replay")
	cfg.Images = d.Images
	funcFlag(fs, "images", "comma-separated image IDs that exist (default: any well-formed img-xxxxxxxx)", func(v string) error {
		cfg.Images = nil
		for _, img := range strings.Split(v, ",") {
			if img = strings.TrimSpace(img); img == "" {
				continue
			}
			if !validImageID(img) {
				return fmt.Errorf("%q is not img- followed by 8 lower-case letters or digits", img)
			}
			cfg.Images = append(cfg.Images, img)
		}
		return nil
	})
	fs.IntVar(&cfg.HealthPort, "health-port", d.HealthPort, "serve GET /healthz for each up instance on its own loopback private IP (127.1.x.y) at this port (0: off, negative: a free port)")
	fs.DurationVar(&cfg.CommandDuration, "command-duration", d.CommandDuration, "how long a TAT command runs")
	fs.DurationVar(&cfg.TaskDuration, "task-duration", d.TaskDuration, "how long a CLB weight change runs as an async task before it takes effect")
	cfg.LoadBalancers = d.LoadBalancers
	funcFlag(fs, "clb", "add a CLB listener LB:LISTENER:PORT[:LOCATION] (e.g. lb-aaaaaaaa:lbl-bbbbbbbb:80) with every instance as a target on PORT, weight 10; with LOCATION (loc-xxxxxxxx) a layer-7 HTTP listener with that rule; repeatable", func(v string) error {
		lbs, err := addListenerFlag(cfg.LoadBalancers, v)
		if err != nil {
			return err
		}
		cfg.LoadBalancers = lbs
		return nil
	})
	f := &cfg.Faults
	fs.Float64Var(&f.SystemBusyRate, "system-busy-rate", d.SystemBusyRate, "fault: probability a reset answers SystemBusy (v2 OperationFail.SystemBusy, v3 see -system-busy-code-v3); no state change")
	fs.IntVar(&f.SystemBusyFirst, "system-busy-first", d.SystemBusyFirst, "fault: the first K reset calls of each instance answer SystemBusy")
	fs.StringVar(&f.SystemBusyCodeV3, "system-busy-code-v3", d.SystemBusyCodeV3, "fault: API 3.0 Error.Code answered for SystemBusy")
	fs.IntVar(&f.ResetRateLimit, "reset-rate-limit", d.ResetRateLimit, "fault: ResetInstance(s) calls allowed per second of arrival, more answer RequestLimitExceeded (negative: unlimited)")
	fs.IntVar(&f.DescribeRateLimit, "describe-rate-limit", d.DescribeRateLimit, "fault: DescribeInstances calls allowed per second of arrival (negative: unlimited)")
	fs.IntVar(&f.BalanceAfter, "balance-after", d.BalanceAfter, "fault: after N accepted resets fleet-wide, resets answer InvalidAccount.InsufficientBalance (0: never)")
	fs.Float64Var(&f.FailRate, "fail-rate", d.FailRate, "fault: probability an accepted reinstall ends FAILED (image unchanged)")
	fs.DurationVar(&f.Latency, "latency", d.Latency, "fault: delay before each API request is processed (a client that gives up first causes no effect)")
	fs.Float64Var(&f.DropRate, "drop-rate", d.DropRate, "fault: probability the connection is closed without an answer")
	fs.BoolVar(&f.DropAfterApply, "drop-after-apply", d.DropAfterApply, "fault: drop answers after the request took effect (lost answer of an accepted call) instead of before")
	fs.Float64Var(&f.ServerErrorRate, "server-error-rate", d.ServerErrorRate, "fault: probability a request answers HTTP 502 with an HTML body, no state change")
	fs.BoolVar(&f.EchoParams, "echo-params", d.EchoParams, "fault: error answers quote the request's password (raw, JSON- and HTML-escaped, percent-encoded, cut), like a careless upstream")
	fs.Float64Var(&f.UnhealthyRate, "unhealthy-rate", d.UnhealthyRate, "fault: probability an instance is unhealthy (health 503, CLB Dead) after a successful reinstall")
	idsFlag(fs, &f.FailIDs, "fail-ids", "fault: comma-separated instances whose every accepted reinstall ends FAILED")
	idsFlag(fs, &f.UnhealthyIDs, "unhealthy-ids", "fault: comma-separated instances that come back unhealthy from every reinstall")
	idsFlag(fs, &f.AgentOfflineIDs, "agent-offline-ids", "fault: comma-separated instances whose TAT agent is always Offline")
	idsFlag(fs, &f.CommandFailIDs, "command-fail-ids", "fault: comma-separated instances on which every TAT command fails with exit code 1")
	fs.IntVar(&f.ServiceRateLimit, "service-rate-limit", d.ServiceRateLimit, "fault: calls allowed per second of each CLB, TAT and Cloud Monitor action (negative: unlimited)")
	fs.BoolVar(&f.LoadBalancerBusy, "clb-busy", d.LoadBalancerBusy, "fault: a weight change on a load balancer with a running task answers FailedOperation.ResourceInOperating")
	fs.Int64Var(&f.Seed, "seed", d.Seed, "seed of the fault and RequestId random source (0 means 1)")
}

// funcFlag is fs.Func whose flag remembers the values it was given
// (Values, and String joined with commas), so that a command line can be
// written back from the flag set: flag.Func's String is always empty.
func funcFlag(fs *flag.FlagSet, name, usage string, set func(string) error) {
	fs.Var(&givenValue{set: set}, name, usage)
}

// givenValue is a flag.Value that records each value given.
type givenValue struct {
	vals []string
	set  func(string) error
}

func (g *givenValue) String() string {
	if g == nil {
		return ""
	}
	return strings.Join(g.vals, ",")
}

func (g *givenValue) Set(v string) error {
	if err := g.set(v); err != nil {
		return err
	}
	g.vals = append(g.vals, v)
	return nil
}

// Values returns every value given, in order: a repeatable flag is written
// back once per value.
func (g *givenValue) Values() []string { return g.vals }

// idsFlag registers a comma-separated list of instance IDs.
func idsFlag(fs *flag.FlagSet, dst *[]string, name, usage string) {
	funcFlag(fs, name, usage, func(v string) error {
		*dst = nil
		for id := range strings.SplitSeq(v, ",") {
			if id = strings.TrimSpace(id); id == "" {
				continue
			}
			if !validInstanceID(id) {
				return fmt.Errorf("%q is not ins- followed by 8 lower-case letters or digits", id)
			}
			*dst = append(*dst, id)
		}
		return nil
	})
}
