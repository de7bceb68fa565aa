package rollout

import "time"

// Spec is a validated rollout: everything the workers need to run it, and
// nothing secret. The planner builds it from a plan file; it is stored in
// Redis as JSON when the plan is applied. Passwords appear only as
// references (SecretRef), resolved by the worker at call time.
type Spec struct {
	// ID names the rollout; stable for a given plan name, so applying the
	// same plan twice addresses the same rollout.
	ID string `json:"id"`
	// PlanFile is the path the plan was read from (for messages only).
	PlanFile string `json:"plan_file,omitempty"`
	// PlanHash is a hash of the plan's canonical content; applying a changed
	// plan under the same name is refused.
	PlanHash string `json:"plan_hash"`
	// Region is the default region of the groups (Group.Region).
	Region string `json:"region"`
	// AccountName is the default account of the groups, a key of
	// Accounts; "" is the process's default credentials. See LocationOf.
	AccountName string `json:"account,omitempty"`
	// RegionOrder, when set, makes each region a phase in this order: the
	// waves are cut from each region's instances in turn (plan:
	// regionOrder), so no two regions are ever reset at once.
	RegionOrder []string `json:"region_order,omitempty"`
	// Accounts maps account names to where their credentials are found
	// (plan: accounts); never a key.
	Accounts map[string]AccountSource `json:"accounts,omitempty"`
	// Endpoint is the API base URL; empty means the real service.
	Endpoint string `json:"endpoint,omitempty"`
	// API is "v2" or "v3".
	API string `json:"api"`
	// Identity names the credential the rollout was applied with (an API
	// key's SecretId, or role:NAME for a CVM role; never a secret), when
	// the applying process had one. Workers of another identity hand the
	// rollout's tasks back, and its rate budgets are keyed by it. Resolved
	// at apply, not part of PlanHash.
	Identity string `json:"identity,omitempty"`
	// AccountIdentities names the credential each named account (a key of
	// Accounts) resolved to where the plan was applied, as Identity does
	// for the default credentials: workers whose source of an account
	// resolves to another hand the rollout's tasks back. Never a secret.
	AccountIdentities map[string]string `json:"account_identities,omitempty"`
	// Groups hold per-group image and login settings; Target.Group indexes it.
	Groups []Group `json:"groups"`
	// Waves in order; wave 0 is the canary.
	Waves []Wave `json:"waves"`
	// Budget is the failure budget for the whole rollout.
	Budget Budget `json:"budget"`
	// RegionBudget, when set, is a failure budget each region must keep on
	// its own (plan: regionFailureBudget): a region breaches it even while
	// the rollout as a whole is within Budget. nil for none.
	RegionBudget *Budget `json:"region_budget,omitempty"`
	// OnBreach is what a tripped budget or a firing alarm does: "pause"
	// (default), "abort", or "rollback" (abort, then reinstall every
	// instance this rollout reset back to its previous image).
	OnBreach string `json:"on_breach"`
	// MaxUnavailable caps the instances out of service at once (plan:
	// maxUnavailable); nil for no cap beyond the waves.
	MaxUnavailable *MaxUnavailable `json:"max_unavailable,omitempty"`
	// StopWhen lists alarms that stop the rollout; nil for none.
	StopWhen *StopWhen `json:"stop_when,omitempty"`
	// RollbackOf names the rollout this one undoes; empty for a rollout
	// made from a plan.
	RollbackOf string `json:"rollback_of,omitempty"`
	// ResetRate and DescribeRate are API calls per second for the whole
	// fleet of workers (one budget per action, region and credential).
	ResetRate    float64 `json:"reset_rate"`
	DescribeRate float64 `json:"describe_rate"`
	// VerifyInterval is how often a reset instance is polled; VerifyTimeout
	// how long after the accepted call it may take to come back verified.
	VerifyInterval time.Duration `json:"verify_interval"`
	VerifyTimeout  time.Duration `json:"verify_timeout"`
	// RetryAttempts and RetryDeadline bound retries of one instance's reset
	// call on retryable errors (SystemBusy, throttling, operation in progress).
	RetryAttempts int           `json:"retry_attempts"`
	RetryDeadline time.Duration `json:"retry_deadline"`
	// StartAt delays the first wave; zero starts at once.
	StartAt time.Time `json:"start_at,omitzero"`
	// Schedule is a cron expression for recurring re-imaging; empty for none.
	// Each occurrence is its own rollout, named Series-<UTC time>.
	Schedule string `json:"schedule,omitempty"`
	// Series is the plan's name, shared by every occurrence of a schedule.
	Series string `json:"series,omitempty"`
	// Window, when set, is the maintenance window outside which no new wave starts.
	Window *Window `json:"window,omitempty"`
	// Webhook receives JSON notifications; empty for none.
	Webhook string `json:"webhook,omitempty"`
	// ResetMatching resets instances even when they already run the target
	// image (plan: skipMatching: false), for re-imaging to a clean state.
	// By default such instances are skipped.
	ResetMatching bool `json:"reset_matching,omitempty"`
}

// Group is the image and login settings shared by a set of targets.
type Group struct {
	Name string `json:"name"`
	// Region and Account say where the group's instances are; empty
	// means the spec's (Spec.LocationOf).
	Region  string `json:"region,omitempty"`
	Account string `json:"account,omitempty"`
	// OS is "linux" or "windows" (password rules differ).
	OS        string `json:"os"`
	ImageType int    `json:"image_type,omitempty"`
	ImageID   string `json:"image_id"`
	// Password is a reference to the password, never the password.
	Password       *SecretRef `json:"password,omitempty"`
	KeyIDs         []string   `json:"key_ids,omitempty"`
	KeepImageLogin bool       `json:"keep_image_login,omitempty"`
	SecurityAgent  *bool      `json:"security_agent,omitempty"`
	MonitorAgent   *bool      `json:"monitor_agent,omitempty"`
	RootSize       int        `json:"root_size,omitempty"`
	HostName       string     `json:"host_name,omitempty"`
	// UserData is the ResetInstance UserData by reference (userdata.go);
	// AutomationAgent asks for the TAT agent (see WantsAutomationAgent).
	UserData        *UserData `json:"user_data,omitempty"`
	AutomationAgent bool      `json:"automation_agent,omitempty"`
	// Health, Hooks and LoadBalancer make "succeeded" mean "serving
	// again"; see serving.go. All optional.
	Health       *Health       `json:"health,omitempty"`
	Hooks        Hooks         `json:"hooks,omitzero"`
	LoadBalancer *LoadBalancer `json:"load_balancer,omitempty"`
}

// SecretRef says where a secret lives: an environment variable or a file,
// read by the worker when it makes the call. Exactly one field is set.
type SecretRef struct {
	Env  string `json:"env,omitempty"`
	File string `json:"file,omitempty"`
}

// Wave is one stage of a rollout.
type Wave struct {
	// Size is the number of instances in the wave (after rounding).
	Size int `json:"size"`
	// Soak is how long to wait after the wave verifies before the next starts.
	Soak time.Duration `json:"soak,omitempty"`
	// Approval, when true, holds the next wave until `fleetreset approve`.
	Approval bool `json:"approval,omitempty"`
	// Budget is the wave's own failure budget.
	Budget Budget `json:"budget"`
}

// Budget is a failure budget: the rollout (or wave) breaches when failures
// exceed Max (a count) or exceed Percent of the instances in scope, once at
// least MinSample instances in scope have a terminal outcome. A zero Budget
// tolerates no failure (any failure breaches).
type Budget struct {
	// Max failures tolerated; -1 means no count limit.
	Max int `json:"max"`
	// Percent of the scope's terminal outcomes tolerated as failures,
	// 0-100; a negative value means no percentage limit.
	Percent float64 `json:"percent"`
	// MinSample is how many terminal outcomes the scope needs before the
	// percentage is judged. Counts are judged at once.
	MinSample int `json:"min_sample,omitempty"`
}

// Window is a daily maintenance window in a time zone: new waves start only
// between Start and End (minutes after midnight; End < Start wraps midnight).
type Window struct {
	Start    int    `json:"start"`
	End      int    `json:"end"`
	Location string `json:"location"`
	// Days limits the window to weekdays (0 = Sunday); empty means every day.
	Days []int `json:"days,omitempty"`
}

// Target is one instance of a rollout.
type Target struct {
	InstanceID string `json:"instance_id"`
	// Group indexes Spec.Groups.
	Group int `json:"group"`
	// Wave indexes Spec.Waves.
	Wave int `json:"wave"`
	// Zone is the availability zone when the plan says it; may be empty.
	Zone string `json:"zone,omitempty"`
}
