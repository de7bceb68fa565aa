package cvmsim

import (
	"bytes"
	"flag"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := Config{
		SecretID: SecretIDDefault, SecretKey: SecretKeyDefault, Region: RegionDefault,
		Clock: got.Clock, ResetDuration: 2 * time.Second, ReplayWindow: 5 * time.Minute,
		CommandDuration: 200 * time.Millisecond, TaskDuration: 100 * time.Millisecond,
		Faults: Faults{SystemBusyCodeV3: "InternalError", ResetRateLimit: 10, DescribeRateLimit: 40, ServiceRateLimit: 20, Seed: 1},
	}
	if got.Clock == nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Config{}.withDefaults() = %+v; want %+v", got, want)
	}
	// Negative rate limits mean unlimited and survive defaulting.
	if f := (Faults{ResetRateLimit: -1}).withDefaults(); f.ResetRateLimit != -1 {
		t.Fatalf("ResetRateLimit -1 became %d", f.ResetRateLimit)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error, "" for valid
	}{
		{"zero", Config{}, ""},
		{"busy_rate_over_one", Config{Faults: Faults{SystemBusyRate: 1.5}}, "SystemBusyRate"},
		{"fail_rate_nan", Config{Faults: Faults{FailRate: math.NaN()}}, "FailRate"},
		{"drop_rate_negative", Config{Faults: Faults{DropRate: -0.1}}, "DropRate"},
		{"server_error_rate", Config{Faults: Faults{ServerErrorRate: 2}}, "ServerErrorRate"},
		{"negative_busy_first", Config{Faults: Faults{SystemBusyFirst: -1}}, "SystemBusyFirst"},
		{"negative_balance", Config{Faults: Faults{BalanceAfter: -1}}, "BalanceAfter"},
		{"negative_latency", Config{Faults: Faults{Latency: -time.Second}}, "Latency"},
		{"unhealthy_rate", Config{Faults: Faults{UnhealthyRate: -1}}, "UnhealthyRate"},
		{"bad_fail_id", Config{Faults: Faults{CommandFailIDs: []string{"x"}}}, "CommandFailIDs"},
		{"negative_command_duration", Config{CommandDuration: -1}, "CommandDuration"},
		{"health_port", Config{HealthPort: 70000}, "HealthPort"},
		{"lb_id", Config{LoadBalancers: []LoadBalancer{{ID: "lb-1"}}}, "lb-1"},
		{"layer7_without_rules", Config{LoadBalancers: []LoadBalancer{{ID: "lb-aaaaaaaa", Listeners: []Listener{{ID: "lbl-aaaaaaaa", Protocol: "HTTP"}}}}}, "Rules"},
		{"bad_target", Config{LoadBalancers: []LoadBalancer{{ID: "lb-aaaaaaaa", Listeners: []Listener{{ID: "lbl-aaaaaaaa", Targets: []Target{{InstanceID: "ins-aaaa0001", Port: 80, Weight: 101}}}}}}}, "weight"},
		{"negative_duration", Config{ResetDuration: -1}, "ResetDuration"},
		{"negative_window", Config{ReplayWindow: -1}, "ReplayWindow"},
		{"duration_max_below_duration", Config{ResetDuration: 10 * time.Second, ResetDurationMax: 5 * time.Second}, "ResetDurationMax"},
		{"duration_max_below_default", Config{ResetDurationMax: time.Second}, "ResetDurationMax"},
		{"negative_duration_max", Config{ResetDurationMax: -1}, "ResetDurationMax"},
		{"duration_max_equal", Config{ResetDuration: 5 * time.Second, ResetDurationMax: 5 * time.Second}, ""},
		{"duration_max_above", Config{ResetDuration: 30 * time.Second, ResetDurationMax: time.Minute}, ""},
		{"bad_image", Config{Images: []string{"img-UPPER123"}}, "Images"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v; want an error naming %q", err, tt.want)
			}
		})
	}
	s := New(Config{})
	if err := s.SetFaults(Faults{FailRate: 3}); err == nil {
		t.Fatal("SetFaults accepted FailRate 3")
	}
}

// TestRegisterFlags checks every knob has a flag that lands in Config, and
// that help shows the effective defaults.
func TestRegisterFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	RegisterFlags(fs, &cfg)
	args := []string{
		"-secret-id=id", "-secret-key=key", "-region=ap-shanghai",
		"-reset-duration=3s", "-reset-duration-max=9s", "-replay-window=1m", "-images=img-aaaaaaaa, img-bbbbbbbb",
		"-system-busy-rate=0.1", "-system-busy-first=2", "-system-busy-code-v3=ResourceInUse",
		"-reset-rate-limit=5", "-describe-rate-limit=-1", "-balance-after=7", "-fail-rate=0.2",
		"-latency=50ms", "-drop-rate=0.3", "-drop-after-apply", "-server-error-rate=0.4", "-echo-params", "-seed=9",
		"-health-port=18080", "-command-duration=1s", "-task-duration=2s",
		"-clb=lb-aaaaaaaa:lbl-bbbbbbbb:80", "-clb=lb-aaaaaaaa:lbl-cccccccc:8080:loc-dddddddd",
		"-unhealthy-rate=0.5", "-unhealthy-ids=ins-aaaa0001, ins-bbbb0002", "-agent-offline-ids=ins-cccc0003",
		"-command-fail-ids=ins-dddd0004", "-service-rate-limit=-1", "-clb-busy",
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	want := Config{
		SecretID: "id", SecretKey: "key", Region: "ap-shanghai",
		ResetDuration: 3 * time.Second, ResetDurationMax: 9 * time.Second, ReplayWindow: time.Minute, Images: []string{"img-aaaaaaaa", "img-bbbbbbbb"},
		HealthPort: 18080, CommandDuration: time.Second, TaskDuration: 2 * time.Second,
		LoadBalancers: []LoadBalancer{{ID: "lb-aaaaaaaa", Listeners: []Listener{
			{ID: "lbl-bbbbbbbb", Port: 80, EveryInstance: true},
			{ID: "lbl-cccccccc", Port: 8080, EveryInstance: true, Rules: []Rule{{LocationID: "loc-dddddddd"}}},
		}}},
		Faults: Faults{
			UnhealthyRate: 0.5, UnhealthyIDs: []string{"ins-aaaa0001", "ins-bbbb0002"}, AgentOfflineIDs: []string{"ins-cccc0003"},
			CommandFailIDs: []string{"ins-dddd0004"}, ServiceRateLimit: -1, LoadBalancerBusy: true,
			SystemBusyRate: 0.1, SystemBusyFirst: 2, SystemBusyCodeV3: "ResourceInUse",
			ResetRateLimit: 5, DescribeRateLimit: -1, BalanceAfter: 7, FailRate: 0.2,
			Latency: 50 * time.Millisecond, DropRate: 0.3, DropAfterApply: true, ServerErrorRate: 0.4, EchoParams: true, Seed: 9,
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("parsed %+v; want %+v", cfg, want)
	}
	var help bytes.Buffer
	fs.SetOutput(&help)
	fs.PrintDefaults()
	for _, name := range []string{"reset-rate-limit", "describe-rate-limit", "system-busy-first", "drop-after-apply", "server-error-rate", "echo-params"} {
		if !strings.Contains(help.String(), "-"+name) {
			t.Errorf("help lacks -%s", name)
		}
	}
	// Defaults shown are the effective ones, not zero.
	fresh := flag.NewFlagSet("sim", flag.ContinueOnError)
	RegisterFlags(fresh, &Config{})
	if got := fresh.Lookup("reset-rate-limit").DefValue; got != "10" {
		t.Errorf("reset-rate-limit default = %s; want 10", got)
	}
	if err := fresh.Parse([]string{"-images=img-BAD"}); err == nil {
		t.Error("-images accepted a malformed image")
	}
	for _, arg := range []string{"-clb=lb-x:lbl-bbbbbbbb:80", "-clb=lb-aaaaaaaa:lbl-bbbbbbbb:0", "-clb=lb-aaaaaaaa:lbl-bbbbbbbb", "-unhealthy-ids=ins-BAD", "-clb=lb-aaaaaaaa:lbl-bbbbbbbb:80:bad"} {
		fs := flag.NewFlagSet("sim", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		RegisterFlags(fs, &Config{})
		if err := fs.Parse([]string{arg}); err == nil {
			t.Errorf("%s was accepted", arg)
		}
	}
}
