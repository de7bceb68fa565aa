package cvmsim

import (
	"strings"
	"testing"
	"time"
)

// clbConfig has a layer-4 listener with every instance and a layer-7 one
// with linuxA bound explicitly on one rule.
func clbConfig() Config {
	return Config{ResetDuration: 10 * time.Second, LoadBalancers: []LoadBalancer{{ID: "lb-aaaaaaaa", Listeners: []Listener{
		{ID: "lbl-tcp00001", Port: 80, EveryInstance: true},
		{ID: "lbl-http0001", Port: 8080, Rules: []Rule{{LocationID: "loc-aaaaaaaa", Domain: "a.example", URL: "/", Targets: []Target{{InstanceID: linuxA.ID, Port: 8080, Weight: 30}}}}},
	}}}}
}

type describeTargetsAnswer struct {
	Listeners []struct {
		ListenerId, Protocol string
		Port                 int
		Targets              []backendAnswer
		Rules                []struct {
			LocationId, Domain, Url string
			Targets                 []backendAnswer
		}
	}
}

type backendAnswer struct {
	Type, InstanceId, InstanceName string
	Port, Weight                   int
	PrivateIpAddresses             []string
}

type targetHealthAnswer struct {
	LoadBalancers []struct {
		LoadBalancerId string
		Listeners      []struct {
			ListenerId string
			Rules      []struct {
				LocationId string
				Targets    []struct {
					IP                 string
					Port               int
					HealthStatus       bool
					TargetId           string
					HealthStatusDetail string
				}
			}
		}
	}
}

func TestDescribeTargets(t *testing.T) {
	cfg := clbConfig()
	cfg.HealthPort = 18082 // private IPs are loopback ones; nothing listens without Start
	b := setup(t, cfg, linuxA, linuxB)
	var a describeTargetsAnswer
	b.c.mustSvc("clb", "DescribeTargets", map[string]any{"LoadBalancerId": "lb-aaaaaaaa"}, &a)
	if len(a.Listeners) != 2 {
		t.Fatalf("Listeners = %+v; want 2", a.Listeners)
	}
	l4, l7 := a.Listeners[0], a.Listeners[1]
	if l4.ListenerId != "lbl-tcp00001" || l4.Protocol != "TCP" || l4.Port != 80 || len(l4.Rules) != 0 || len(l4.Targets) != 2 {
		t.Fatalf("layer 4 listener = %+v", l4)
	}
	want := backendAnswer{Type: "CVM", InstanceId: linuxB.ID, InstanceName: "sim-" + linuxB.ID, Port: 80, Weight: 10, PrivateIpAddresses: []string{"127.1.0.2"}}
	if got := l4.Targets[1]; got.Type != want.Type || got.InstanceId != want.InstanceId || got.InstanceName != want.InstanceName ||
		got.Port != want.Port || got.Weight != want.Weight || len(got.PrivateIpAddresses) != 1 || got.PrivateIpAddresses[0] != "127.1.0.2" {
		t.Fatalf("target = %+v; want %+v", got, want)
	}
	if l7.Protocol != "HTTP" || len(l7.Targets) != 0 || len(l7.Rules) != 1 || l7.Rules[0].LocationId != "loc-aaaaaaaa" ||
		len(l7.Rules[0].Targets) != 1 || l7.Rules[0].Targets[0].Weight != 30 {
		t.Fatalf("layer 7 listener = %+v", l7)
	}
	// ListenerIds filters; an unknown one or LB is an error.
	b.c.mustSvc("clb", "DescribeTargets", map[string]any{"LoadBalancerId": "lb-aaaaaaaa", "ListenerIds": []string{"lbl-http0001"}}, &a)
	if len(a.Listeners) != 1 || a.Listeners[0].ListenerId != "lbl-http0001" {
		t.Fatalf("filtered Listeners = %+v", a.Listeners)
	}
	for params, code := range map[*map[string]any]string{
		{"LoadBalancerId": "lb-zzzzzzzz"}:                                          "InvalidParameter.LBIdNotFound",
		{"LoadBalancerId": "lb-aaaaaaaa", "ListenerIds": []string{"lbl-zzzzzzzz"}}: "InvalidParameter.ListenerIdNotFound",
		{}: "MissingParameter",
	} {
		if got := b.c.svc("clb", "DescribeTargets", *params, nil); got != code {
			t.Errorf("DescribeTargets(%v) = %q; want %q", *params, got, code)
		}
	}
}

// TestTargetHealth follows CLB health through a reset and an unhealthy
// instance.
func TestTargetHealth(t *testing.T) {
	b := setup(t, clbConfig(), linuxA, linuxB, stoppedC)
	health := func() map[string]string {
		var a targetHealthAnswer
		b.c.mustSvc("clb", "DescribeTargetHealth", map[string]any{"LoadBalancerIds": []string{"lb-aaaaaaaa"}}, &a)
		out := map[string]string{}
		for _, l := range a.LoadBalancers[0].Listeners {
			for _, r := range l.Rules {
				for _, tg := range r.Targets {
					if tg.HealthStatus != (tg.HealthStatusDetail == "Alive") {
						t.Fatalf("target %+v: HealthStatus and detail disagree", tg)
					}
					out[l.ListenerId+"/"+r.LocationId+"/"+tg.TargetId] = tg.HealthStatusDetail
				}
			}
		}
		return out
	}
	got := health()
	want := map[string]string{
		"lbl-tcp00001//" + linuxA.ID: "Alive", "lbl-tcp00001//" + linuxB.ID: "Alive", "lbl-tcp00001//" + stoppedC.ID: "Dead",
		"lbl-http0001/loc-aaaaaaaa/" + linuxA.ID: "Alive",
	}
	if !mapsEqual(got, want) {
		t.Fatalf("health = %v; want %v", got, want)
	}
	wantCode(t, b.c.reset(genTC3, linuxA.ID, nil), "")
	b.srv.SetHealthy(linuxB.ID, false)
	if got := health(); got["lbl-tcp00001//"+linuxA.ID] != "Dead" || got["lbl-http0001/loc-aaaaaaaa/"+linuxA.ID] != "Dead" || got["lbl-tcp00001//"+linuxB.ID] != "Dead" {
		t.Fatalf("health during reset / unhealthy = %v", got)
	}
	b.clk.Advance(10 * time.Second)
	if got := health(); got["lbl-tcp00001//"+linuxA.ID] != "Alive" {
		t.Fatalf("health after reset = %v", got)
	}
	if code := b.c.svc("clb", "DescribeTargetHealth", map[string]any{"LoadBalancerIds": []string{"lb-zzzzzzzz"}}, nil); code != "InvalidParameter.LBIdNotFound" {
		t.Fatalf("unknown LB = %q", code)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestWeightTask checks the async weight change: Status 2 for
// TaskDuration, the weight unchanged until then, then 0 and recorded.
func TestWeightTask(t *testing.T) {
	b := setup(t, clbConfig(), linuxA, linuxB)
	var r struct{ RequestId string }
	start := b.clk.Now()
	b.c.mustSvc("clb", "BatchModifyTargetWeight", map[string]any{"LoadBalancerId": "lb-aaaaaaaa", "ModifyList": []map[string]any{
		{"ListenerId": "lbl-tcp00001", "Targets": []map[string]any{{"InstanceId": linuxA.ID, "Port": 80, "Weight": 0}}},
		{"ListenerId": "lbl-http0001", "LocationId": "loc-aaaaaaaa", "Targets": []map[string]any{{"InstanceId": linuxA.ID, "Port": 8080}}, "Weight": 0},
	}}, &r)
	status := func() int {
		var s struct{ Status int }
		b.c.mustSvc("clb", "DescribeTaskStatus", map[string]any{"TaskId": r.RequestId}, &s)
		return s.Status
	}
	if got := status(); got != 2 {
		t.Fatalf("Status right after = %d; want 2", got)
	}
	if w := b.srv.Weights(linuxA.ID); w["lb-aaaaaaaa/lbl-tcp00001"] != 10 {
		t.Fatalf("weights while running = %v; want unchanged", w)
	}
	b.clk.Advance(TaskDurationDefault)
	if got := status(); got != 0 {
		t.Fatalf("Status after TaskDuration = %d; want 0", got)
	}
	if w := b.srv.Weights(linuxA.ID); w["lb-aaaaaaaa/lbl-tcp00001"] != 0 || w["lb-aaaaaaaa/lbl-http0001/loc-aaaaaaaa"] != 0 {
		t.Fatalf("weights after = %v; want both 0", w)
	}
	// ModifyTargetWeight restores; no weight anywhere means 10.
	b.c.mustSvc("clb", "ModifyTargetWeight", map[string]any{"LoadBalancerId": "lb-aaaaaaaa", "ListenerId": "lbl-tcp00001",
		"Targets": []map[string]any{{"InstanceId": linuxA.ID, "Port": 80}}}, nil)
	b.clk.Advance(TaskDurationDefault)
	h := b.srv.WeightHistory(linuxA.ID)
	if len(h) != 3 {
		t.Fatalf("WeightHistory = %+v; want 3 changes", h)
	}
	if c := h[0]; c.From != 10 || c.To != 0 || c.ListenerID != "lbl-tcp00001" || c.TaskID != r.RequestId || !c.RequestedAt.Equal(start) || !c.At.Equal(start.Add(TaskDurationDefault)) {
		t.Errorf("first change = %+v", c)
	}
	if c := h[1]; c.From != 30 || c.To != 0 || c.LocationID != "loc-aaaaaaaa" {
		t.Errorf("second change = %+v", c)
	}
	if c := h[2]; c.From != 0 || c.To != 10 || c.Action != "ModifyTargetWeight" || !c.At.After(h[0].At) {
		t.Errorf("restore = %+v", c)
	}
	if len(b.srv.WeightHistory(linuxB.ID)) != 0 {
		t.Error("linuxB has weight changes")
	}
}

func TestWeightErrors(t *testing.T) {
	b := setup(t, clbConfig(), linuxA, linuxB)
	target := func(id string, port, weight int) map[string]any {
		return map[string]any{"InstanceId": id, "Port": port, "Weight": weight}
	}
	batch := func(rules ...map[string]any) map[string]any {
		return map[string]any{"LoadBalancerId": "lb-aaaaaaaa", "ModifyList": rules}
	}
	var many []map[string]any
	for range 501 {
		many = append(many, target(linuxA.ID, 80, 0))
	}
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"unknown_lb", map[string]any{"LoadBalancerId": "lb-zzzzzzzz", "ModifyList": []any{}}, "InvalidParameter.LBIdNotFound"},
		{"empty_list", batch(), "MissingParameter"},
		{"unknown_listener", batch(map[string]any{"ListenerId": "lbl-zzzzzzzz", "Targets": []any{target(linuxA.ID, 80, 0)}}), "InvalidParameter.ListenerIdNotFound"},
		{"layer7_without_location", batch(map[string]any{"ListenerId": "lbl-http0001", "Targets": []any{target(linuxA.ID, 8080, 0)}}), "InvalidParameter.LocationNotFound"},
		{"layer7_unknown_location", batch(map[string]any{"ListenerId": "lbl-http0001", "LocationId": "loc-zzzzzzzz", "Targets": []any{target(linuxA.ID, 8080, 0)}}), "InvalidParameter.LocationNotFound"},
		{"layer4_with_location", batch(map[string]any{"ListenerId": "lbl-tcp00001", "LocationId": "loc-aaaaaaaa", "Targets": []any{target(linuxA.ID, 80, 0)}}), "InvalidParameter.LocationNotFound"},
		{"unbound_target", batch(map[string]any{"ListenerId": "lbl-http0001", "LocationId": "loc-aaaaaaaa", "Targets": []any{target(linuxB.ID, 8080, 0)}}), "InvalidParameter"},
		{"wrong_port", batch(map[string]any{"ListenerId": "lbl-tcp00001", "Targets": []any{target(linuxA.ID, 81, 0)}}), "InvalidParameter"},
		{"weight_101", batch(map[string]any{"ListenerId": "lbl-tcp00001", "Targets": []any{target(linuxA.ID, 80, 101)}}), "InvalidParameterValue"},
		{"no_port", batch(map[string]any{"ListenerId": "lbl-tcp00001", "Targets": []any{map[string]any{"InstanceId": linuxA.ID}}}), "MissingParameter"},
		{"over_500", batch(map[string]any{"ListenerId": "lbl-tcp00001", "Targets": many}), "InvalidParameterValue.Length"},
		{"weight_as_string", batch(map[string]any{"ListenerId": "lbl-tcp00001", "Targets": []any{map[string]any{"InstanceId": linuxA.ID, "Port": 80, "Weight": "0"}}}), "InvalidParameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *b.c
			c.t = t
			if got := c.svc("clb", "BatchModifyTargetWeight", tt.params, nil); got != tt.want {
				t.Fatalf("BatchModifyTargetWeight = %q; want %q", got, tt.want)
			}
		})
	}
	// All or nothing: no failed call changed a weight.
	b.clk.Advance(time.Second)
	if h := b.srv.WeightHistory(linuxA.ID); len(h) != 0 {
		t.Fatalf("failed calls changed weights: %+v", h)
	}
	if got := b.c.svc("clb", "DescribeTaskStatus", map[string]any{"TaskId": "nope"}, nil); got != "InvalidParameter" {
		t.Fatalf("unknown task = %q", got)
	}
	if got := b.c.svc("clb", "ModifyTargetWeight", map[string]any{"LoadBalancerId": "lb-aaaaaaaa", "Targets": []any{target(linuxA.ID, 80, 0)}}, nil); got != "MissingParameter" {
		t.Fatalf("ModifyTargetWeight without ListenerId = %q", got)
	}
}

// TestLoadBalancerBusy checks the opt-in fault: a second change while a
// task runs is refused, and accepted once it ended.
func TestLoadBalancerBusy(t *testing.T) {
	cfg := clbConfig()
	cfg.LoadBalancerBusy = true
	b := setup(t, cfg, linuxA, linuxB)
	change := func(id string) string {
		return b.c.svc("clb", "ModifyTargetWeight", map[string]any{"LoadBalancerId": "lb-aaaaaaaa", "ListenerId": "lbl-tcp00001",
			"Targets": []map[string]any{{"InstanceId": id, "Port": 80}}, "Weight": 0}, nil)
	}
	if got := change(linuxA.ID); got != "" {
		t.Fatal(got)
	}
	if got := change(linuxB.ID); got != "FailedOperation.ResourceInOperating" {
		t.Fatalf("second change while running = %q", got)
	}
	b.clk.Advance(TaskDurationDefault)
	if got := change(linuxB.ID); got != "" {
		t.Fatalf("change after the task = %q", got)
	}
}

// TestCLBFlagRegistersAddedInstances checks EveryInstance binds instances
// added after New, and a layer-7 flag listener binds them on its rule.
func TestCLBFlagRegistersAddedInstances(t *testing.T) {
	lbs, err := addListenerFlag(nil, "lb-bbbbbbbb:lbl-bbbbbbbb:443:loc-bbbbbbbb")
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, Config{LoadBalancers: lbs}, linuxA)
	b.srv.AddInstances(linuxB)
	w := b.srv.Weights(linuxB.ID)
	if w["lb-bbbbbbbb/lbl-bbbbbbbb/loc-bbbbbbbb"] != WeightDefault || len(w) != 1 {
		t.Fatalf("Weights(B) = %v", w)
	}
	if _, err := addListenerFlag(lbs, "lb-bbbbbbbb:lbl-bbbbbbbb:80"); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate listener = %v", err)
	}
}
