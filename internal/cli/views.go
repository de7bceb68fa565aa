package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/notify"
	"github.com/fleetreset/fleetreset/rollout"
)

// The types below are what `list --json` and `status --json` print. They
// copy known fields one by one from the ledger (as the web UI's views do),
// so the ledger's internals never leak into output people script against:
// no -1 for "no limit" (a limit that is off is omitted), no nanosecond
// durations (durations are strings such as "5m0s"), waves numbered from 1.

// countsJSON is a tally. InFlight and Pending are present only where the
// instances were read (status); NotFinished always is.
type countsJSON struct {
	Total       int  `json:"total"`
	Succeeded   int  `json:"succeeded"`
	Skipped     int  `json:"skipped"`
	Failed      int  `json:"failed"`
	Ambiguous   int  `json:"ambiguous"`
	Cancelled   int  `json:"cancelled"`
	NotFinished int  `json:"not_finished"`
	InFlight    *int `json:"in_flight,omitempty"`
	Pending     *int `json:"pending,omitempty"`
}

func countsOf(t tally) countsJSON {
	c := countsJSON{Total: t.Size, Succeeded: t.Succeeded, Skipped: t.Skipped, Failed: t.Failed,
		Ambiguous: t.Ambiguous, Cancelled: t.Cancelled, NotFinished: t.NotFinished()}
	if t.Open {
		c.InFlight, c.Pending = &t.InFlight, &t.Pending
	}
	return c
}

// regionJSON is the progress of one region.
type regionJSON struct {
	Region string     `json:"region"`
	Counts countsJSON `json:"counts"`
}

// budgetJSON is a failure budget; a limit that is off is absent.
type budgetJSON struct {
	MaxFailed  *int     `json:"max_failed,omitempty"`
	MaxPercent *float64 `json:"max_percent,omitempty"`
	// MinSample is how many outcomes the percentage waits for.
	MinSample int `json:"min_sample,omitempty"`
	// Text is the budget for people, e.g. "stop at more than 2 failed".
	Text string `json:"text"`
}

func budgetOf(b rollout.Budget) budgetJSON {
	v := budgetJSON{Text: b.String()}
	if b.Max >= 0 {
		v.MaxFailed = &b.Max
	}
	if b.Percent >= 0 {
		v.MaxPercent = &b.Percent
		v.MinSample = b.MinSample
	}
	return v
}

type groupJSON struct {
	Name    string `json:"name"`
	OS      string `json:"os"`
	ImageID string `json:"image_id"`
	// Password is the reference ("env NAME", "file PATH"), never the password.
	Password string `json:"password,omitempty"`
}

type windowJSON struct {
	Start    string `json:"start"` // "22:00"
	End      string `json:"end"`
	Location string `json:"location"`
	Days     []int  `json:"days,omitempty"` // 0 = Sunday
}

type waveJSON struct {
	Number    int        `json:"number"`
	Size      int        `json:"size"`
	Counts    countsJSON `json:"counts"`
	Complete  bool       `json:"complete"`
	Approval  bool       `json:"approval,omitempty"`
	Approved  bool       `json:"approved,omitempty"`
	Soak      string     `json:"soak,omitempty"`
	Budget    budgetJSON `json:"failure_budget"`
	StartedAt time.Time  `json:"started_at,omitzero"`
	SoakUntil time.Time  `json:"soak_until,omitzero"`
}

type rolloutJSON struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Wave is the current wave, from 1.
	Wave      int        `json:"wave"`
	WaveCount int        `json:"wave_count"`
	Attempt   int        `json:"attempt"`
	Counts    countsJSON `json:"counts"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	PlanFile  string     `json:"plan_file,omitempty"`
	PlanHash  string     `json:"plan_hash"`
	Region    string     `json:"region"`
	API       string     `json:"api"`
	Endpoint  string     `json:"endpoint,omitempty"`
	// Webhook is the host only: the rest of a webhook URL is often a token.
	Webhook      string      `json:"webhook,omitempty"`
	Groups       []groupJSON `json:"groups"`
	Budget       budgetJSON  `json:"failure_budget"`
	RegionBudget *budgetJSON `json:"region_failure_budget,omitempty"`
	// Regions count each region, for rollouts that count regions.
	Regions        []regionJSON `json:"regions,omitempty"`
	OnBreach       string       `json:"on_breach"`
	ResetRate      float64      `json:"reset_rate_per_second"`
	DescribeRate   float64      `json:"describe_rate_per_second"`
	VerifyInterval string       `json:"verify_interval"`
	VerifyTimeout  string       `json:"verify_timeout"`
	RetryAttempts  int          `json:"retry_attempts"`
	RetryDeadline  string       `json:"retry_deadline"`
	StartAt        time.Time    `json:"start_at,omitzero"`
	Schedule       string       `json:"schedule,omitempty"`
	Window         *windowJSON  `json:"window,omitempty"`
	Waves          []waveJSON   `json:"waves"`
	// RollbackOf names the rollout this one rolls back; RolledBackBy the
	// rollback of this one, when it exists.
	RollbackOf   string `json:"rollback_of,omitempty"`
	RolledBackBy string `json:"rolled_back_by,omitempty"`
}

// rolloutView builds the JSON view of r. total and waves are its tallies;
// waves may be nil, when the waves are counted from the ledger alone.
func rolloutView(r *ledger.Rollout, total tally, waves []tally) rolloutJSON {
	s := r.Spec
	v := rolloutJSON{ID: r.ID, State: string(r.State), Reason: r.Reason, Wave: min(r.Wave+1, len(r.Waves)), WaveCount: len(r.Waves),
		Attempt: r.Attempt, Counts: countsOf(total), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		PlanFile: s.PlanFile, PlanHash: s.PlanHash, Region: s.Region, API: s.API, Endpoint: s.Endpoint,
		Budget: budgetOf(s.Budget), OnBreach: s.OnBreach, ResetRate: s.ResetRate, DescribeRate: s.DescribeRate,
		VerifyInterval: durationText(s.VerifyInterval), VerifyTimeout: durationText(s.VerifyTimeout),
		RetryAttempts: s.RetryAttempts, RetryDeadline: durationText(s.RetryDeadline), StartAt: s.StartAt, Schedule: s.Schedule,
		Groups: []groupJSON{}, Waves: []waveJSON{}, RollbackOf: s.RollbackOf}
	if s.Webhook != "" {
		v.Webhook = notify.Host(s.Webhook)
	}
	for _, g := range s.Groups {
		gv := groupJSON{Name: g.Name, OS: g.OS, ImageID: g.ImageID}
		if g.Password != nil {
			gv.Password = g.Password.String()
		}
		v.Groups = append(v.Groups, gv)
	}
	if b := s.RegionBudget; b != nil {
		bv := budgetOf(*b)
		v.RegionBudget = &bv
	}
	for _, rt := range regionTallies(r, nil) {
		v.Regions = append(v.Regions, regionJSON{Region: rt.Region, Counts: countsOf(rt.tally)})
	}
	if w := s.Window; w != nil {
		v.Window = &windowJSON{Start: clockText(w.Start), End: clockText(w.End), Location: w.Location, Days: w.Days}
	}
	for i, w := range r.Waves {
		t := tally{Size: w.Size, Counters: w.Counters}
		if i < len(waves) {
			t = waves[i]
		}
		wv := waveJSON{Number: w.Index + 1, Size: w.Size, Counts: countsOf(t), Complete: w.Complete, Approved: w.Approved,
			StartedAt: w.StartedAt, SoakUntil: w.SoakUntil}
		if w.Index < len(s.Waves) {
			sw := s.Waves[w.Index]
			wv.Approval, wv.Soak, wv.Budget = sw.Approval, durationText(sw.Soak), budgetOf(sw.Budget)
		}
		v.Waves = append(v.Waves, wv)
	}
	return v
}

// durationText is d for people and scripts alike ("1m30s"), "" for zero.
func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// clockText formats minutes after midnight as "15:04".
func clockText(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// timingLines says when a rollout may start and run, for people: its
// startAt, schedule and maintenance window; none when it has none.
func timingLines(s rollout.Spec) []string {
	var out []string
	if !s.StartAt.IsZero() {
		out = append(out, "starts at "+humanTimeOf(s.StartAt))
	}
	if s.Schedule != "" {
		out = append(out, "schedule: "+s.Schedule)
	}
	if w := s.Window; w != nil {
		days := "every day"
		if len(w.Days) > 0 {
			names := make([]string, len(w.Days))
			for i, d := range w.Days {
				names[i] = time.Weekday(d).String()[:3]
			}
			days = strings.Join(names, ", ")
		}
		out = append(out, fmt.Sprintf("window: new waves start only %s–%s %s, %s", clockText(w.Start), clockText(w.End), w.Location, days))
	}
	return out
}

// instanceJSON is one instance in `status --json`.
type instanceJSON struct {
	ID    string `json:"instance_id"`
	Wave  int    `json:"wave"` // from 1
	Zone  string `json:"zone,omitempty"`
	State string `json:"state"`
	// Tries counts reset attempts in this generation; Resets counts calls
	// the cloud accepted.
	Tries     int    `json:"tries"`
	Resets    int    `json:"resets"`
	RequestID string `json:"request_id,omitempty"`
	Code      string `json:"code,omitempty"`
	Error     string `json:"error,omitempty"`
	Adopted   string `json:"adopted,omitempty"`
	// Step, Hooks and Drained: see web.InstanceView.
	Step     string   `json:"step,omitempty"`
	Hooks    []string `json:"hooks,omitempty"`
	Drained  bool     `json:"drained,omitempty"`
	OldImage string   `json:"old_image,omitempty"`
	// NewImage is set only for an instance that runs its target image
	// (succeeded or skipped); SeenImage is what the cloud showed when a
	// reset was judged otherwise.
	NewImage    string    `json:"new_image,omitempty"`
	SeenImage   string    `json:"seen_image,omitempty"`
	TargetImage string    `json:"target_image,omitempty"`
	FirstTryAt  time.Time `json:"first_try_at,omitzero"`
	CalledAt    time.Time `json:"called_at,omitzero"`
	DoneAt      time.Time `json:"done_at,omitzero"`
}

func instanceView(r *ledger.Rollout, in *ledger.Instance) instanceJSON {
	newImg, seen := images(in)
	v := instanceJSON{ID: in.ID, Wave: in.Wave + 1, Zone: in.Zone, State: string(in.State), Tries: in.Tries, Resets: in.Resets,
		RequestID: in.RequestID, Code: in.Code, Error: in.Error, Adopted: in.Adopted, OldImage: in.OldImage,
		Step: in.Serving.Step(), Hooks: in.Serving.HookResults(), Drained: in.Serving.Drained(),
		NewImage: newImg, SeenImage: seen, TargetImage: targetImage(r, in),
		FirstTryAt: in.FirstTryAt, CalledAt: in.CalledAt, DoneAt: in.DoneAt}
	return v
}

// images splits the ledger's one recorded image of an instance: the new
// image when it runs its target (succeeded, skipped), or the image the
// cloud showed when its reset was judged failed, which is no new image at
// all (usually the old one: the reinstall never happened).
func images(in *ledger.Instance) (newImage, seen string) {
	if in.State == ledger.Succeeded || in.State == ledger.Skipped {
		return in.NewImage, ""
	}
	return "", in.NewImage
}

func targetImage(r *ledger.Rollout, in *ledger.Instance) string {
	if in.Group >= 0 && in.Group < len(r.Spec.Groups) {
		return r.Spec.Groups[in.Group].ImageID
	}
	return ""
}
