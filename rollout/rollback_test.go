package rollout_test

import (
	"errors"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
	"github.com/google/go-cmp/cmp"
)

// rollbackOrig is a finished rollout of two groups in three waves (1, 2,
// then 3 at a time) with soaks, an approval and serving settings.
func rollbackOrig() rollout.Spec {
	no := rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}
	return rollout.Spec{
		ID: "web", PlanHash: "h1", Region: "ap-guangzhou", API: "v3", Identity: "AKIDx",
		Groups: []rollout.Group{
			{Name: "linux", OS: "linux", ImageID: "img-new", ImageType: 1, Password: &rollout.SecretRef{Env: "ROOT_PW"},
				Health: &rollout.Health{Interval: time.Second, HealthyThreshold: 2},
				Hooks:  rollout.Hooks{Before: []rollout.Hook{{Name: "drain", Webhook: &rollout.WebhookHook{URL: "https://hooks.example/d"}}}}},
			{Name: "win", OS: "windows", ImageID: "img-win2", KeyIDs: []string{"skey-1"}, KeepImageLogin: true,
				LoadBalancer: &rollout.LoadBalancer{DrainTime: time.Minute}},
		},
		Waves: []rollout.Wave{
			{Size: 1, Soak: time.Hour, Approval: true, Budget: rollout.Budget{Max: 0, Percent: rollout.NoLimit}},
			{Size: 2, Soak: time.Minute, Budget: rollout.Budget{Max: 1, Percent: rollout.NoLimit}},
			{Size: 3, Budget: no},
		},
		Budget: rollout.Budget{Max: 2, Percent: rollout.NoLimit}, OnBreach: rollout.OnBreachRollback,
		StopWhen: &rollout.StopWhen{MonitorPolicies: []string{"policy-1"}, Interval: time.Minute},
		Schedule: "0 3 * * *", Series: "web", StartAt: time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC), ResetMatching: true,
		Webhook: "https://hooks.example/n",
	}
}

func TestRollbackSpec(t *testing.T) {
	orig := rollbackOrig()
	rolled := func(id string, group, wave int, old string) rollout.RolledInstance {
		return rollout.RolledInstance{ID: id, Group: group, Wave: wave, Zone: "z1", OldImage: old, RequestID: "req-" + id}
	}
	tests := []struct {
		name        string
		reset       []rollout.RolledInstance
		wantGroups  []string // name=image
		wantSizes   []int
		wantTargets []rollout.Target
	}{
		{
			name:        "oneInstance",
			reset:       []rollout.RolledInstance{rolled("ins-a", 0, 2, "img-old")},
			wantGroups:  []string{"linux@img-old=img-old"},
			wantSizes:   []int{1},
			wantTargets: []rollout.Target{{InstanceID: "ins-a", Group: 0, Wave: 0, Zone: "z1"}},
		},
		{
			name: "groupPerOldImage", // two old images in one group, one in the other
			reset: []rollout.RolledInstance{
				rolled("ins-a", 0, 0, "img-old2"), rolled("ins-b", 1, 1, "img-win1"),
				rolled("ins-c", 0, 1, "img-old1"), rolled("ins-d", 0, 2, "img-old2"),
			},
			wantGroups: []string{"linux@img-old1=img-old1", "linux@img-old2=img-old2", "win@img-win1=img-win1"},
			wantSizes:  []int{1, 2, 1},
			wantTargets: []rollout.Target{
				{InstanceID: "ins-a", Group: 1, Wave: 0, Zone: "z1"},
				{InstanceID: "ins-b", Group: 2, Wave: 1, Zone: "z1"},
				{InstanceID: "ins-c", Group: 0, Wave: 1, Zone: "z1"},
				{InstanceID: "ins-d", Group: 1, Wave: 2, Zone: "z1"},
			},
		},
		{
			name: "wavesRecutInPlanOrder", // given out of order: sorted by original wave, stable within one
			reset: []rollout.RolledInstance{
				rolled("ins-3a", 0, 2, "img-old"), rolled("ins-3b", 0, 2, "img-old"), rolled("ins-1", 0, 0, "img-old"),
				rolled("ins-2", 0, 1, "img-old"), rolled("ins-3c", 0, 2, "img-old"), rolled("ins-3d", 0, 2, "img-old"),
				rolled("ins-3e", 0, 2, "img-old"), rolled("ins-3f", 0, 2, "img-old"),
			},
			wantGroups: []string{"linux@img-old=img-old"},
			wantSizes:  []int{1, 2, 3, 2}, // the last size repeats, as in a plan
			wantTargets: []rollout.Target{
				{InstanceID: "ins-1", Wave: 0, Zone: "z1"},
				{InstanceID: "ins-2", Wave: 1, Zone: "z1"}, {InstanceID: "ins-3a", Wave: 1, Zone: "z1"},
				{InstanceID: "ins-3b", Wave: 2, Zone: "z1"}, {InstanceID: "ins-3c", Wave: 2, Zone: "z1"}, {InstanceID: "ins-3d", Wave: 2, Zone: "z1"},
				{InstanceID: "ins-3e", Wave: 3, Zone: "z1"}, {InstanceID: "ins-3f", Wave: 3, Zone: "z1"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, targets, err := rollout.RollbackSpec(orig, tt.reset)
			if err != nil {
				t.Fatal(err)
			}
			var groups []string
			for _, g := range spec.Groups {
				groups = append(groups, g.Name+"="+g.ImageID)
			}
			if diff := cmp.Diff(tt.wantGroups, groups); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
			var sizes []int
			for _, w := range spec.Waves {
				sizes = append(sizes, w.Size)
				if w.Soak != 0 || w.Approval {
					t.Errorf("wave %+v has a soak or an approval; a rollback has neither", w)
				}
			}
			if diff := cmp.Diff(tt.wantSizes, sizes); diff != "" {
				t.Errorf("wave sizes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantTargets, targets); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRollbackSpecKeeps: login, serving settings, budgets, alarms and
// identity come from the original; ID, hash, breach policy, schedule and
// skip-matching are the rollback's own.
func TestRollbackSpecKeeps(t *testing.T) {
	orig := rollbackOrig()
	reset := []rollout.RolledInstance{
		{ID: "ins-a", Group: 0, Wave: 0, OldImage: "img-old", RequestID: "r1"},
		{ID: "ins-b", Group: 1, Wave: 1, OldImage: "img-win1", RequestID: "r2"},
		{ID: "ins-c", Group: 1, Wave: 1, OldImage: "img-win1", RequestID: "r3"},
	}
	spec, _, err := rollout.RollbackSpec(orig, reset)
	if err != nil {
		t.Fatal(err)
	}
	lin, win := spec.Groups[0], spec.Groups[1]
	if lin.Password == nil || *lin.Password != *orig.Groups[0].Password || lin.ImageType != 1 || lin.OS != "linux" {
		t.Errorf("linux group login = %+v; want the original's password reference and image type", lin)
	}
	if !cmp.Equal(win.KeyIDs, []string{"skey-1"}) || !win.KeepImageLogin || win.Password != nil {
		t.Errorf("windows group login = %+v; want the original's keys and keepImageLogin", win)
	}
	if lin.Health != orig.Groups[0].Health || len(lin.Hooks.Before) != 1 || win.LoadBalancer != orig.Groups[1].LoadBalancer {
		t.Errorf("serving settings not kept: %+v, %+v", lin, win)
	}
	want := []rollout.Budget{orig.Waves[0].Budget, orig.Waves[1].Budget}
	if got := []rollout.Budget{spec.Waves[0].Budget, spec.Waves[1].Budget}; !cmp.Equal(want, got) {
		t.Errorf("wave budgets = %+v; want %+v (from the wave each size came from)", got, want)
	}
	checks := []struct {
		field     string
		got, want any
	}{
		{"ID", spec.ID, "web-rollback"},
		{"RollbackOf", spec.RollbackOf, "web"},
		{"PlanHash", spec.PlanHash, "rollback:h1"},
		{"OnBreach", spec.OnBreach, rollout.OnBreachPause},
		{"ResetMatching", spec.ResetMatching, false},
		{"Schedule", spec.Schedule, ""},
		{"Series", spec.Series, ""},
		{"StartAt", spec.StartAt, time.Time{}},
		{"StopWhen", spec.StopWhen, (*rollout.StopWhen)(nil)},
		{"Budget", spec.Budget, orig.Budget},
		{"Identity", spec.Identity, "AKIDx"},
		{"Webhook", spec.Webhook, orig.Webhook},
	}
	for _, c := range checks {
		if !cmp.Equal(c.got, c.want) {
			t.Errorf("%s = %v; want %v", c.field, c.got, c.want)
		}
	}
	// Pure: the same input, the same rollback (a second apply finds it).
	again, _, _ := rollout.RollbackSpec(orig, reset)
	if diff := cmp.Diff(spec, again); diff != "" {
		t.Errorf("second RollbackSpec differs (-first +second):\n%s", diff)
	}
}

func TestRolledInstanceLeftOut(t *testing.T) {
	orig := rollbackOrig()
	tests := []struct {
		name    string
		in      rollout.RolledInstance
		want    string
		notDone bool
	}{
		{"reset", rollout.RolledInstance{ID: "a", OldImage: "img-old", RequestID: "r"}, "", false},
		{"neverReset", rollout.RolledInstance{ID: "a", OldImage: "img-old"}, "not reset by the rollout", true},
		{"ambiguous", rollout.RolledInstance{ID: "a", OldImage: "img-old", Ambiguous: true}, "outcome ambiguous: a reset may have been made; check it in the console", false},
		{"unknownOldImage", rollout.RolledInstance{ID: "a", RequestID: "r"}, "image before the reset unknown (no pre-flight record); not guessed", false},
		{"alreadyOnTarget", rollout.RolledInstance{ID: "a", OldImage: "img-new", RequestID: "r"}, "already ran img-new before the reset", false},
		{"badGroup", rollout.RolledInstance{ID: "a", Group: 7, OldImage: "img-old", RequestID: "r"}, "group 7 not in the rollout", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.LeftOut(orig)
			if got != tt.want {
				t.Errorf("LeftOut = %q; want %q", got, tt.want)
			}
			if rollout.NotReset(got) != tt.notDone {
				t.Errorf("NotReset(%q) = %v; want %v", got, !tt.notDone, tt.notDone)
			}
		})
	}
}

func TestRollbackSpecRefuses(t *testing.T) {
	orig := rollbackOrig()
	rb := orig
	rb.RollbackOf = "older"
	tests := []struct {
		name  string
		orig  rollout.Spec
		reset []rollout.RolledInstance
		is    error // nil: any error
	}{
		{"nothing", orig, nil, rollout.ErrNothingToRollBack},
		{"rollbackOfRollback", rb, []rollout.RolledInstance{{ID: "a", OldImage: "img-old", RequestID: "r"}}, rollout.ErrRollbackOfRollback},
		{"unknownOldImage", orig, []rollout.RolledInstance{{ID: "a", RequestID: "r"}}, nil}, // the caller must leave it out
		{"twice", orig, []rollout.RolledInstance{{ID: "a", OldImage: "img-old", RequestID: "r"}, {ID: "a", OldImage: "img-old", RequestID: "r"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := rollout.RollbackSpec(tt.orig, tt.reset)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("RollbackSpec = %v; want an error (%v)", err, tt.is)
			}
		})
	}
}
