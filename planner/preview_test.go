package planner

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetreset/fleetreset/rollout"
)

// TestPreviewGolden renders the preview of the example plan behind a CLB:
// the serving lines, then per wave what drain, health and hooks add, then
// the ETA. Run with -update to rewrite testdata/preview/*.golden.
func TestPreviewGolden(t *testing.T) {
	plan, err := Load("../plans/web-behind-clb.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := MakePreview(plan, nil)
	var b strings.Builder
	for _, l := range p.ServingLines() {
		fmt.Fprintln(&b, l)
	}
	for _, w := range p.Waves {
		fmt.Fprintf(&b, "wave %d: %d to reset, serving at least %s, hooks up to %s\n", w.Index+1, w.ToReset, w.Serving, w.HooksUpTo)
	}
	fmt.Fprintf(&b, "ETA: %s\n", p.ETA())
	got := b.String()
	const golden = "testdata/preview/web-behind-clb.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestPreviewGolden -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("preview mismatch (-want +got):\n%s", diff)
	}
}

// TestPreviewWithoutServing: a plan without health, hooks, drain or alarms
// previews exactly as before issue 11: no lines, nothing added to the ETA.
func TestPreviewWithoutServing(t *testing.T) {
	plan := mustParse(t, strings.Replace(minimal, "waves: [1, 100%]", "waves: [{size: 1, soak: 1m}, 100%]\nrateLimit: {reset: 2}", 1), Options{})
	p := MakePreview(plan, nil)
	if p.Groups != nil || p.Alarms != nil || p.ServingLines() != nil {
		t.Errorf("Groups, Alarms, ServingLines = %v, %v, %v; want nil", p.Groups, p.Alarms, p.ServingLines())
	}
	// 3 resets at 2/s plus the canary's soak.
	if want := 1500*time.Millisecond + time.Minute; p.MinWallTime != want || p.HooksUpTo != 0 {
		t.Errorf("MinWallTime, HooksUpTo = %v, %v; want %v, 0", p.MinWallTime, p.HooksUpTo, want)
	}
	if got, want := p.ETA(), "1m2s"; got != want {
		t.Errorf("ETA() = %q; want %q", got, want)
	}
}

// TestPreviewWaveTime: a wave adds the most any of its groups adds (they
// drain and probe in parallel), counting only instances it will reset.
func TestPreviewWaveTime(t *testing.T) {
	text := `version: 1
name: mixed
region: ap-guangzhou
password: {env: PW}
rateLimit: {reset: 10}
groups:
  - name: web
    instances: [ins-aaaa0001, ins-aaaa0002]
    loadBalancer: {listeners: [{loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}], drainTime: 20s}
    health: {checks: [{tcp: "{privateIp}:80"}], initialDelay: 15s, interval: 10s, healthyThreshold: 2}
    hooks:
      before: [{name: stop, command: x, timeout: 1m}]
      after: [{name: tell, webhook: "https://cmdb.example.com/x?token=t", timeout: 10m}]
  - name: db
    instances: [ins-bbbb0001]
    hooks: {before: [{name: dump, command: x, timeout: 30m}]}
  - name: plain
    instances: [ins-cccc0001]
waves: [2, 1, 1]
`
	plan := mustParse(t, text, Options{})
	pf := &rollout.PreflightReport{Skipped: map[string]string{"ins-cccc0001": "already on the image"}}
	p := MakePreview(plan, pf)
	web := 20*time.Second + 15*time.Second + 2*10*time.Second
	tests := []struct {
		wave             int
		serving, hooksTo time.Duration
	}{
		{0, web, 11 * time.Minute},
		{1, 0, 30 * time.Minute},
		{2, 0, 0}, // its only instance is skipped
	}
	for _, tt := range tests {
		if w := p.Waves[tt.wave]; w.Serving != tt.serving || w.HooksUpTo != tt.hooksTo {
			t.Errorf("wave %d: Serving, HooksUpTo = %v, %v; want %v, %v", tt.wave, w.Serving, w.HooksUpTo, tt.serving, tt.hooksTo)
		}
	}
	if want := 300*time.Millisecond + web; p.MinWallTime != want {
		t.Errorf("MinWallTime = %v; want %v", p.MinWallTime, want)
	}
	if got, want := p.ETA(), "55s + hooks up to 41m"; got != want {
		t.Errorf("ETA() = %q; want %q", got, want)
	}
	want := []string{
		"Serving again (around each reset, in this order):",
		"  group web:",
		"    drain:  weight 0 on lb-abcd1234/lbl-abcd1234 port 80, then wait 20s",
		"    before: stop (shell command, up to 1m, abandon on failure)",
		"    after:  tell (webhook https://cmdb.example.com/x?..., up to 10m, abandon on failure)",
		"    health: tcp {privateIp}:80",
		"            2 passing in a row × 10s after 15s (probe timeout 2s), deadline 10m",
		"    adds at least 55s per wave, + hooks up to 11m",
		"  group db:",
		"    before: dump (shell command, up to 30m, abandon on failure)",
		"    adds hooks up to 30m per wave",
		"  group plain:",
		"    no drain, hooks or health checks: succeeded once the image is verified",
	}
	if diff := cmp.Diff(want, p.ServingLines()); diff != "" {
		t.Errorf("ServingLines mismatch (-want +got):\n%s", diff)
	}
}

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 1500 * time.Millisecond: "1.5s", 2 * time.Minute: "2m", 90 * time.Second: "1m30s",
		time.Hour: "1h", 90 * time.Minute: "1h30m", time.Hour + time.Second: "1h0m1s",
	} {
		if got := short(d); got != want {
			t.Errorf("short(%v) = %q; want %q", d, got, want)
		}
	}
}
