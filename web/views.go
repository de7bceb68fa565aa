package web

import (
	"net/url"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// The view types below are what pages and the JSON API show. They copy
// known fields one by one from the ledger, so a field added to the ledger
// later (or a secret in a spec by mistake) never reaches a page unseen.

// RolloutView is a rollout as the UI and /api/rollouts show it.
type RolloutView struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Wave is the current wave, 1-based as in the CLI.
	Wave      int             `json:"wave"`
	WaveCount int             `json:"wave_count"`
	Total     int             `json:"total"`
	Attempt   int             `json:"attempt"`
	Counters  ledger.Counters `json:"counters"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	Region    string          `json:"region"`
	API       string          `json:"api"`
	// Endpoint and Webhook are shown as scheme and host only: a webhook URL
	// often carries its token in the path or query.
	Endpoint string      `json:"endpoint,omitempty"`
	Webhook  string      `json:"webhook,omitempty"`
	Groups   []GroupView `json:"groups"`
	Budget   string      `json:"failure_budget"`
	OnBreach string      `json:"on_breach"`
	StartAt  time.Time   `json:"start_at,omitzero"`
	Waves    []WaveView  `json:"waves"`
	// Regions count each region, for rollouts that count regions
	// (rollout.Spec.CountedRegions); RegionBudget is each one's budget.
	Regions      []RegionView `json:"regions,omitempty"`
	RegionBudget string       `json:"region_failure_budget,omitempty"`
	// RollbackOf names the rollout this one rolls back; RolledBackBy the
	// rollback of this one, when it exists (linkRollbacks, ledger.RolledBackBy).
	RollbackOf   string `json:"rollback_of,omitempty"`
	RolledBackBy string `json:"rolled_back_by,omitempty"`
}

// GroupView is a group's image and login, the password by reference only.
type GroupView struct {
	Name     string `json:"name"`
	OS       string `json:"os"`
	ImageID  string `json:"image_id"`
	Password string `json:"password,omitempty"`
	KeyIDs   int    `json:"key_ids,omitempty"`
}

// WaveView is one wave.
type WaveView struct {
	// Number is 1-based.
	Number   int             `json:"number"`
	Size     int             `json:"size"`
	Counters ledger.Counters `json:"counters"`
	// InFlight counts instances the cloud is reinstalling (accepted, not
	// yet verified); only the single-rollout views fill it, from the
	// rollout's resetting set. Instances in the middle of the call itself
	// are not counted: no set records them.
	InFlight int  `json:"in_flight"`
	Complete bool `json:"complete"`
	// Approval says a human must approve before the next wave starts.
	Approval  bool          `json:"approval,omitempty"`
	Approved  bool          `json:"approved,omitempty"`
	Soak      time.Duration `json:"soak,omitempty"`
	Budget    string        `json:"failure_budget"`
	StartedAt time.Time     `json:"started_at,omitzero"`
	SoakUntil time.Time     `json:"soak_until,omitzero"`
	// Status is a word for people: done, running, soaking, awaiting approval, waiting.
	Status string `json:"status"`
}

// RegionView is one region's progress.
type RegionView struct {
	Region   string          `json:"region"`
	Size     int             `json:"size"`
	Counters ledger.Counters `json:"counters"`
}

// InstanceView is one instance's ledger entry.
type InstanceView struct {
	ID string `json:"instance_id"`
	// Wave is 1-based; Group is the group's name.
	Wave      int    `json:"wave"`
	Group     string `json:"group,omitempty"`
	Zone      string `json:"zone,omitempty"`
	State     string `json:"state"`
	Tries     int    `json:"tries"`
	Resets    int    `json:"resets"`
	RequestID string `json:"request_id,omitempty"`
	Code      string `json:"code,omitempty"`
	Error     string `json:"error,omitempty"`
	OldImage  string `json:"old_image,omitempty"`
	// NewImage is the image a succeeded or skipped instance runs; for
	// other outcomes SeenImage is what the cloud showed at the end.
	NewImage    string `json:"new_image,omitempty"`
	SeenImage   string `json:"seen_image,omitempty"`
	TargetImage string `json:"target_image,omitempty"`
	// Adopted, when set, says why the last reset was adopted from what the
	// cloud showed instead of called.
	Adopted string `json:"adopted,omitempty"`
	// Step is where the instance stands in drain, hooks and health;
	// Hooks lists the hooks it ran and how they ended; Drained says its
	// load-balancer weight is 0 and not yet restored.
	Step    string   `json:"step,omitempty"`
	Hooks   []string `json:"hooks,omitempty"`
	Drained bool     `json:"drained,omitempty"`
	// FirstTryAt is the first intent of this generation, IntentAt the
	// latest, CalledAt when the cloud accepted the reset, DoneAt when the
	// instance reached its outcome.
	FirstTryAt time.Time `json:"first_try_at,omitzero"`
	IntentAt   time.Time `json:"intent_at,omitzero"`
	CalledAt   time.Time `json:"called_at,omitzero"`
	DoneAt     time.Time `json:"done_at,omitzero"`
}

func rolloutView(r *ledger.Rollout, now time.Time) RolloutView {
	v := RolloutView{
		ID: r.ID, State: string(r.State), Reason: r.Reason, Wave: min(r.Wave+1, len(r.Waves)), WaveCount: len(r.Waves),
		Total: r.Total, Attempt: r.Attempt, Counters: r.Counters, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Region: r.Spec.Region, API: r.Spec.API, Endpoint: hostOnly(r.Spec.Endpoint), Webhook: hostOnly(r.Spec.Webhook),
		Budget: r.Spec.Budget.String(), OnBreach: r.Spec.OnBreach, StartAt: r.Spec.StartAt, RollbackOf: r.Spec.RollbackOf,
	}
	for _, g := range r.Spec.Groups {
		gv := GroupView{Name: g.Name, OS: g.OS, ImageID: g.ImageID, KeyIDs: len(g.KeyIDs)}
		if p := g.Password; p != nil {
			switch {
			case p.Env != "":
				gv.Password = "env " + p.Env
			case p.File != "":
				gv.Password = "file " + p.File
			}
		}
		v.Groups = append(v.Groups, gv)
	}
	for _, rs := range r.Regions {
		v.Regions = append(v.Regions, RegionView{Region: rs.Region, Size: rs.Size, Counters: rs.Counters})
	}
	if b := r.Spec.RegionBudget; b != nil {
		v.RegionBudget = b.String()
	}
	for _, w := range r.Waves {
		wv := WaveView{Number: w.Index + 1, Size: w.Size, Counters: w.Counters, Complete: w.Complete, Approved: w.Approved,
			StartedAt: w.StartedAt, SoakUntil: w.SoakUntil}
		if w.Index < len(r.Spec.Waves) {
			sw := r.Spec.Waves[w.Index]
			wv.Approval, wv.Soak, wv.Budget = sw.Approval, sw.Soak, sw.Budget.String()
		}
		wv.Status = waveStatus(r, w, wv, now)
		v.Waves = append(v.Waves, wv)
	}
	return v
}

func waveStatus(r *ledger.Rollout, w ledger.WaveStatus, wv WaveView, now time.Time) string {
	switch {
	case w.Index < r.Wave || r.State == ledger.Completed:
		return "done"
	case w.Index > r.Wave:
		if r.State == ledger.Aborted {
			return "not started"
		}
		return "waiting"
	case r.State == ledger.Aborted:
		return "aborted"
	case r.State == ledger.Paused:
		return "paused"
	case r.State == ledger.AwaitingApproval:
		return "awaiting approval"
	case w.Complete && !w.SoakUntil.IsZero() && w.SoakUntil.After(now):
		return "soaking until " + w.SoakUntil.Local().Format(time.TimeOnly)
	case w.Complete:
		return "done"
	case r.State == ledger.Scheduled:
		return "scheduled"
	}
	return "running"
}

func instanceView(r *ledger.Rollout, in *ledger.Instance) InstanceView {
	v := InstanceView{ID: in.ID, Wave: in.Wave + 1, Zone: in.Zone, State: string(in.State), Tries: in.Tries, Resets: in.Resets,
		RequestID: in.RequestID, Code: in.Code, Error: in.Error, OldImage: in.OldImage, NewImage: in.NewImage, Adopted: in.Adopted,
		Step: in.Serving.Step(), Hooks: in.Serving.HookResults(), Drained: in.Serving.Drained(),
		FirstTryAt: in.FirstTryAt, IntentAt: in.IntentAt, CalledAt: in.CalledAt, DoneAt: in.DoneAt}
	if in.Group >= 0 && in.Group < len(r.Spec.Groups) {
		v.Group = r.Spec.Groups[in.Group].Name
		v.TargetImage = r.Spec.Groups[in.Group].ImageID
	}
	if in.State != ledger.Succeeded && in.State != ledger.Skipped {
		// The image the cloud showed when a reset failed is not a new
		// image: "img-old → img-old" read as a reinstall that happened.
		v.SeenImage, v.NewImage = v.NewImage, ""
	}
	return v
}

// hostOnly reduces a URL to scheme://host; anything unparsable to "(set)".
func hostOnly(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(set)"
	}
	return u.Scheme + "://" + u.Host
}

// instanceStates are the ledger states in protocol order, for filters.
var instanceStates = []ledger.InstanceState{ledger.Pending, ledger.Held, ledger.Calling, ledger.Resetting,
	ledger.Succeeded, ledger.Skipped, ledger.Failed, ledger.Ambiguous, ledger.Cancelled}

func knownState(s string) bool {
	for _, st := range instanceStates {
		if string(st) == s {
			return true
		}
	}
	return false
}

// linkRollbacks sets RolledBackBy on every view whose rollback is among
// views.
func linkRollbacks(views []RolloutView) {
	of := make(map[string]string, len(views))
	for _, v := range views {
		of[v.ID] = v.RollbackOf
	}
	by := rollout.RolledBackBy(of)
	for i, v := range views {
		views[i].RolledBackBy = by[v.ID]
	}
}
