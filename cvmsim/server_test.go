package cvmsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestResetLifecycle drives a reset through each generation with the fake
// clock: OPERATING (v2 14) for ResetDuration, then SUCCESS with the new
// image and the prior state (v2 2 or 4).
func TestResetLifecycle(t *testing.T) {
	for _, g := range allGens {
		for _, start := range []Instance{linuxA, stoppedC} {
			t.Run(string(g)+"_"+start.State, func(t *testing.T) {
				b := setup(t, Config{ResetDuration: 10 * time.Second}, start)
				params := map[string]string{"ImageId": ImageLinuxNew}
				if g == genV2Get || g == genV2Post {
					params = map[string]string{"imageId": ImageLinuxNew, "imageType": "2"}
				}
				o := b.c.reset(g, start.ID, params)
				wantCode(t, o, "")
				if o.requestID == "" {
					t.Fatal("reset answered no RequestId")
				}

				iv, _ := b.srv.Instance(start.ID)
				if iv.LatestOperation != "ResetInstance" || iv.LatestOperationState != OperationOperating ||
					iv.LatestOperationRequestID != o.requestID || iv.V2Status != V2StatusReinstalling {
					t.Fatalf("after reset: %+v; want ResetInstance OPERATING %s status 14", iv, o.requestID)
				}
				v := b.c.describe(g, start.ID)
				if g == genV2Get || g == genV2Post {
					if v.v2Status != V2StatusReinstalling || v.image != ImageLinuxOld {
						t.Fatalf("v2 during reset: %+v; want status 14, old image", v)
					}
				} else if v.opState != OperationOperating || v.opRequestID != o.requestID || v.image != ImageLinuxOld {
					t.Fatalf("v3 during reset: %+v; want OPERATING %s, old image", v, o.requestID)
				}

				b.clk.Advance(10*time.Second - time.Nanosecond)
				if iv, _ := b.srv.Instance(start.ID); iv.LatestOperationState != OperationOperating {
					t.Fatalf("1ns before the end: %s; want OPERATING", iv.LatestOperationState)
				}
				b.clk.Advance(time.Nanosecond)
				v = b.c.describe(g, start.ID)
				wantStatus := map[string]int{StateRunning: V2StatusRunning, StateStopped: V2StatusStopped}[start.State]
				if g == genV2Get || g == genV2Post {
					if v.v2Status != wantStatus || v.image != ImageLinuxNew {
						t.Fatalf("v2 after reset: %+v; want status %d, image %s", v, wantStatus, ImageLinuxNew)
					}
				} else if v.opState != OperationSuccess || v.image != ImageLinuxNew || v.state != start.State {
					t.Fatalf("v3 after reset: %+v; want SUCCESS, %s, %s", v, ImageLinuxNew, start.State)
				}
				st := b.srv.Stats()
				if st.AcceptedResets[start.ID] != 1 || st.SucceededResets != 1 || len(st.ResetTimes[start.ID]) != 1 || !st.ResetTimes[start.ID][0].Equal(testEpoch) {
					t.Fatalf("stats = %+v; want one accepted, succeeded reset at %v", st, testEpoch)
				}
			})
		}
	}
}

// TestResetKeepsImageWithoutImageID checks that a reset without an image
// reinstalls the current one.
func TestResetKeepsImageWithoutImageID(t *testing.T) {
	b := setup(t, Config{}, linuxA)
	wantCode(t, b.c.reset(genTC3, linuxA.ID, nil), "")
	b.clk.Advance(ResetDurationDefault)
	if iv, _ := b.srv.Instance(linuxA.ID); iv.ImageID != ImageLinuxOld || iv.LatestOperationState != OperationSuccess {
		t.Fatalf("instance = %+v; want SUCCESS on %s", iv, ImageLinuxOld)
	}
}

func TestResetInProgress(t *testing.T) {
	tests := []struct {
		g      gen
		code   string
		v2Code int
	}{
		{genV2Post, "OperationConstraints.InvaildInstanceStatus", 5100},
		{genTC3, "OperationDenied.InstanceOperationInProgress", 0},
		{genV1Form, "OperationDenied.InstanceOperationInProgress", 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.g), func(t *testing.T) {
			b := setup(t, Config{}, linuxA)
			first := b.c.reset(tt.g, linuxA.ID, nil)
			wantCode(t, first, "")
			b.clk.Advance(time.Second)
			o := b.c.reset(tt.g, linuxA.ID, nil)
			wantCode(t, o, tt.code)
			if o.v2Code != tt.v2Code {
				t.Fatalf("v2 code = %d; want %d", o.v2Code, tt.v2Code)
			}
			if iv, _ := b.srv.Instance(linuxA.ID); iv.LatestOperationRequestID != first.requestID {
				t.Fatalf("rejected reset changed LatestOperationRequestId to %s", iv.LatestOperationRequestID)
			}
			b.clk.Advance(time.Second)
			wantCode(t, b.c.reset(tt.g, linuxA.ID, nil), "")
			if n := b.srv.Stats().AcceptedResets[linuxA.ID]; n != 2 {
				t.Fatalf("AcceptedResets = %d; want 2", n)
			}
		})
	}
}

// TestResetValidation checks each rejected request answers its code and
// changes nothing.
func TestResetValidation(t *testing.T) {
	tests := []struct {
		name   string
		g      gen
		id     string
		params map[string]string
		images []string
		code   string
		v2Code int
	}{
		{"v3_unknown_instance", genTC3, "ins-zzzz9999", nil, nil, "InvalidInstanceId.NotFound", 0},
		{"v2_unknown_instance", genV2Post, "ins-zzzz9999", nil, nil, "InvalidInstanceId.NotFound", 5000},
		{"v3_malformed_instance", genTC3, "ins-ABC", nil, nil, "InvalidInstanceId.Malformed", 0},
		{"v3_legacy_id_malformed", genTC3, "qcvm" + strings.Repeat("a", 32), nil, nil, "InvalidInstanceId.Malformed", 0},
		{"v2_malformed_instance", genV2Get, "i-123", nil, nil, "InvalidInstanceId.Malformed", 4000},
		{"v2_missing_instance", genV2Post, "", nil, nil, "InvalidParameter", 4000},
		{"v3_missing_instance", genV1Form, "", nil, nil, "MissingParameter", 0},
		{"v3_image_malformed", genTC3, linuxA.ID, map[string]string{"ImageId": "img-XYZ"}, nil, "InvalidImageId.Malformed", 0},
		{"v3_image_not_found", genTC3, linuxA.ID, map[string]string{"ImageId": "img-00000000"}, []string{ImageLinuxNew}, "InvalidImageId.NotFound", 0},
		{"v2_image_not_found", genV2Post, linuxA.ID, map[string]string{"imageId": "img-00000000", "imageType": "2"}, []string{ImageLinuxNew}, "InvalidImageId.NotFound", 5000},
		{"v2_image_without_type", genV2Post, linuxA.ID, map[string]string{"imageId": ImageLinuxNew}, nil, "InvalidParameter", 4000},
		{"v2_type_without_image", genV2Post, linuxA.ID, map[string]string{"imageType": "2"}, nil, "InvalidParameter", 4000},
		{"v2_bad_image_type", genV2Post, linuxA.ID, map[string]string{"imageId": ImageLinuxNew, "imageType": "5"}, nil, "InvalidParameter", 4000},
		{"v2_bad_agent_flag", genV2Post, linuxA.ID, map[string]string{"needSecurityAgent": "yes"}, nil, "InvalidParameter", 4000},
		{"v2_bad_root_size", genV2Post, linuxA.ID, map[string]string{"rootSize": "-1"}, nil, "InvalidParameter", 4000},
		{"v2_password_too_long_for_v2", genV2Post, linuxA.ID, map[string]string{"password": "abcdefgh12345678X"}, nil, "InvalidParameter.PasswordNotConformSpecs", 4000},
		{"v3_password_one_class", genTC3, linuxA.ID, map[string]string{"LoginSettings.Password": "abcdefghij"}, nil, "InvalidParameterValue.InvalidPassword", 0},
		{"v3_windows_password_short", genV1Form, windowsD.ID, map[string]string{"LoginSettings.Password": "Abc123!x"}, nil, "InvalidParameterValue.InvalidPassword", 0},
		{"v3_key_on_windows", genV1Form, windowsD.ID, map[string]string{"LoginSettings.KeyIds.0": "skey-abcd1234"}, nil, "UnsupportedOperation.KeyPairUnsupportedWindows", 0},
		{"v3_password_and_keep_login", genTC3, linuxA.ID, map[string]string{"LoginSettings.Password": "Abcdef123!", "LoginSettings.KeepImageLogin": "TRUE"}, nil, "InvalidParameter.ParameterConflict", 0},
		{"v3_keep_login_not_upper", genTC3, linuxA.ID, map[string]string{"LoginSettings.KeepImageLogin": "true"}, nil, "InvalidParameterValue", 0},
		{"v3_unknown_parameter", genTC3, linuxA.ID, map[string]string{"Imageid": ImageLinuxNew}, nil, "UnknownParameter", 0},
		{"v1_one_based_key_ids", genV1Form, linuxA.ID, map[string]string{"LoginSettings.KeyIds.1": "skey-abcd1234"}, nil, "UnknownParameter", 0},
		{"v3_bad_key_id", genV1Form, linuxA.ID, map[string]string{"LoginSettings.KeyIds.0": "key-1"}, nil, "InvalidParameterValue.KeyPairNotFound", 0},
		{"v3_illegal_host_name", genTC3, linuxA.ID, map[string]string{"HostName": "-bad-"}, nil, "InvalidParameterValue.IllegalHostName", 0},
		{"v3_disk_size_not_number", genV1Form, linuxA.ID, map[string]string{"SystemDisk.DiskSize": "big"}, nil, "InvalidParameter", 0},
		{"v3_disk_size_string_in_json", genTC3, linuxA.ID, map[string]string{"SystemDisk.DiskSize": "50"}, nil, "InvalidParameter", 0},
		{"v3_bad_user_data", genTC3, linuxA.ID, map[string]string{"UserData": "%%%"}, nil, "InvalidParameterValue.InvalidUserDataFormat", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, Config{Images: tt.images}, linuxA, windowsD)
			o := b.c.reset(tt.g, tt.id, tt.params)
			wantCode(t, o, tt.code)
			if o.v2Code != tt.v2Code {
				t.Fatalf("v2 code = %d; want %d", o.v2Code, tt.v2Code)
			}
			st := b.srv.Stats()
			if got := st.ResetCountHistogram(); got[0] != 2 {
				t.Fatalf("ResetCountHistogram = %v; want no accepted reset", got)
			}
			if st.Errors[tt.code] != 1 {
				t.Fatalf("Errors = %v; want %s counted once", st.Errors, tt.code)
			}
		})
	}
}

// TestResetAccepts checks requests that look unusual but are valid.
func TestResetAccepts(t *testing.T) {
	tests := []struct {
		name   string
		g      gen
		id     string
		params map[string]string
	}{
		{"v2_legacy_qcvm_id", genV2Post, newInstance(linuxA).legacyID, nil},
		{"v2_short_region_code", genV2Get, linuxA.ID, map[string]string{"Region": "gz"}},
		{"v2_all_params", genV2Post, linuxA.ID, map[string]string{"imageId": ImageLinuxNew, "imageType": "2", "password": "abc123!@#", "needSecurityAgent": "0", "needMonitorAgent": "1", "rootSize": "50"}},
		{"v3_full", genTC3, linuxA.ID, map[string]string{"ImageId": ImageLinuxNew, "LoginSettings.Password": "Abcdefgh123456789012345678!!", "HostName": "web-1.prod", "UserData": "ZWNobyBoaQ=="}},
		{"v1_keys", genV1Form, linuxA.ID, map[string]string{"LoginSettings.KeyIds.0": "skey-abcd1234", "LoginSettings.KeyIds.1": "skey-abcd5678", "EnhancedService.SecurityService.Enabled": "false", "SystemDisk.DiskSize": "60"}},
		{"v3_keep_login", genTC3, linuxA.ID, map[string]string{"LoginSettings.KeepImageLogin": "TRUE"}},
		{"v3_windows_password", genTC3, windowsD.ID, map[string]string{"LoginSettings.Password": "Abcdefgh1234|"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, Config{}, linuxA, windowsD)
			if tt.params["Region"] != "" {
				b.c.region = tt.params["Region"]
				delete(tt.params, "Region")
			}
			wantCode(t, b.c.reset(tt.g, tt.id, tt.params), "")
		})
	}
}

func TestFailRate(t *testing.T) {
	b := setup(t, Config{Faults: Faults{FailRate: 1}}, linuxA)
	wantCode(t, b.c.reset(genTC3, linuxA.ID, map[string]string{"ImageId": ImageLinuxNew}), "")
	b.clk.Advance(ResetDurationDefault)
	a := b.c.v3("DescribeInstances", map[string]any{"InstanceIds": []string{linuxA.ID}})
	in := a.Response.InstanceSet[0]
	if *in.LatestOperationState != OperationFailed || in.ImageId != ImageLinuxOld || in.LatestOperationErrorMsg == nil || in.InstanceState != StateRunning {
		t.Fatalf("after failed reset: %+v; want FAILED, old image, an error message, RUNNING", in)
	}
	if v := b.c.describe(genV2Post, linuxA.ID); v.v2Status != V2StatusRunning {
		t.Fatalf("v2 status = %d; want 2", v.v2Status)
	}
	if st := b.srv.Stats(); st.FailedResets != 1 || st.AcceptedResets[linuxA.ID] != 1 {
		t.Fatalf("stats = %+v; want 1 failed of 1 accepted", st)
	}
}

// TestFailRateIsSeeded checks that a fractional rate fails some resets and
// that the same seed and calls repeat the outcome.
func TestFailRateIsSeeded(t *testing.T) {
	run := func() []string {
		ins := Generate(40)
		b := setup(t, Config{Faults: Faults{FailRate: 0.5, Seed: 7, ResetRateLimit: -1}}, ins...)
		for _, in := range ins {
			wantCode(t, b.c.reset(genTC3, in.ID, nil), "")
		}
		b.clk.Advance(ResetDurationDefault)
		var states []string
		for _, iv := range b.srv.Instances() {
			states = append(states, iv.LatestOperationState)
		}
		return states
	}
	first, second := run(), run()
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("same seed gave %v then %v", first, second)
	}
	failed := strings.Count(strings.Join(first, ","), OperationFailed)
	if failed == 0 || failed == len(first) {
		t.Fatalf("%d of %d failed; want some but not all", failed, len(first))
	}
}

func TestSystemBusyRate(t *testing.T) {
	tests := []struct {
		name   string
		g      gen
		code3  string
		want   string
		v2Code int
	}{
		{"v2", genV2Post, "", "OperationFail.SystemBusy", 5100},
		{"v3_default_code", genTC3, "", "InternalError", 0},
		{"v3_custom_code", genV1Form, "ResourceInUse", "ResourceInUse", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t, Config{Faults: Faults{SystemBusyRate: 1, SystemBusyCodeV3: tt.code3}}, linuxA)
			o := b.c.reset(tt.g, linuxA.ID, nil)
			wantCode(t, o, tt.want)
			if o.v2Code != tt.v2Code {
				t.Fatalf("v2 code = %d; want %d", o.v2Code, tt.v2Code)
			}
			if iv, _ := b.srv.Instance(linuxA.ID); iv.LatestOperation != "" || iv.AcceptedResets != 0 {
				t.Fatalf("SystemBusy changed state: %+v", iv)
			}
			// Turning the fault off at run time lets the reset through.
			if err := b.srv.SetFaults(Faults{}); err != nil {
				t.Fatal(err)
			}
			wantCode(t, b.c.reset(tt.g, linuxA.ID, nil), "")
		})
	}
}

func TestSystemBusyRateFraction(t *testing.T) {
	ins := Generate(60)
	b := setup(t, Config{Faults: Faults{SystemBusyRate: 0.5, ResetRateLimit: -1}}, ins...)
	busy := 0
	for _, in := range ins {
		if o := b.c.reset(genTC3, in.ID, nil); o.code == "InternalError" {
			busy++
		}
	}
	if busy < 10 || busy > 50 {
		t.Fatalf("%d of %d busy at rate 0.5", busy, len(ins))
	}
	if n := b.srv.Stats().ResetCountHistogram()[1]; n != len(ins)-busy {
		t.Fatalf("%d accepted; want %d", n, len(ins)-busy)
	}
}

func TestSystemBusyFirst(t *testing.T) {
	b := setup(t, Config{Faults: Faults{SystemBusyFirst: 2}}, linuxA, linuxB)
	for i, want := range []string{"OperationFail.SystemBusy", "OperationFail.SystemBusy", ""} {
		if o := b.c.reset(genV2Post, linuxA.ID, nil); o.code != want {
			t.Fatalf("call %d on A = %q; want %q", i+1, o.code, want)
		}
	}
	// Each instance has its own count; an invalid call does not use it up.
	wantCode(t, b.c.reset(genTC3, linuxB.ID, map[string]string{"ImageId": "bad"}), "InvalidImageId.Malformed")
	wantCode(t, b.c.reset(genTC3, linuxB.ID, nil), "InternalError")
	wantCode(t, b.c.reset(genTC3, linuxB.ID, nil), "InternalError")
	wantCode(t, b.c.reset(genTC3, linuxB.ID, nil), "")
	if h := b.srv.Stats().ResetCountHistogram(); h[1] != 2 {
		t.Fatalf("histogram = %v; want both reset once", h)
	}
}

// TestRateLimit checks per-second limits by arrival second: rejected calls
// change nothing and do not use the budget, the next second is fresh.
func TestRateLimit(t *testing.T) {
	tests := []struct {
		name   string
		g      gen
		action string
		code   string
	}{
		{"v3_reset", genTC3, "ResetInstance", "RequestLimitExceeded"},
		{"v1_reset", genV1Form, "ResetInstance", "RequestLimitExceeded"},
		{"v2_reset", genV2Post, "ResetInstances", "RequestLimitExceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins := Generate(8)
			b := setup(t, Config{Faults: Faults{ResetRateLimit: 3}}, ins...)
			b.clk.Advance(500 * time.Millisecond) // mid-second: the window is the whole second
			for i, in := range ins[:5] {
				o := b.c.reset(tt.g, in.ID, nil)
				want := ""
				if i >= 3 {
					want = tt.code
					if tt.g == genV2Post && o.v2Code != 4400 {
						t.Fatalf("v2 code = %d; want 4400", o.v2Code)
					}
				}
				wantCode(t, o, want)
			}
			b.clk.Advance(499 * time.Millisecond)
			wantCode(t, b.c.reset(tt.g, ins[5].ID, nil), tt.code)
			b.clk.Advance(time.Millisecond) // next second
			wantCode(t, b.c.reset(tt.g, ins[5].ID, nil), "")

			st := b.srv.Stats()
			sec := testEpoch.Unix()
			if st.Calls[tt.action][sec] != 6 || st.Calls[tt.action][sec+1] != 1 || st.MaxCallsPerSecond[tt.action] != 6 {
				t.Fatalf("Calls = %v, Max = %v; want 6 then 1", st.Calls, st.MaxCallsPerSecond)
			}
			if st.RateLimited[tt.action] != 3 || st.Errors[tt.code] != 3 {
				t.Fatalf("RateLimited = %v, Errors = %v; want 3", st.RateLimited, st.Errors)
			}
			if h := st.ResetCountHistogram(); h[1] != 4 || h[0] != 4 {
				t.Fatalf("histogram = %v; want 4 reset once, 4 never", h)
			}
		})
	}
}

func TestRateLimitDescribeDefaultAndUnlimited(t *testing.T) {
	b := setup(t, Config{}, linuxA)
	for i := range DescribeRateLimitDefault + 1 {
		a := b.c.v3("DescribeInstances", map[string]any{})
		if want := map[bool]string{true: "RequestLimitExceeded", false: ""}[i == DescribeRateLimitDefault]; a.code() != want {
			t.Fatalf("call %d = %q; want %q", i+1, a.code(), want)
		}
	}
	// The v2 and v3 DescribeInstances share the action name, hence the budget.
	if a := b.c.v2(http.MethodPost, "DescribeInstances", nil); a.CodeDesc != "RequestLimitExceeded" || *a.Code != 4400 {
		t.Fatalf("v2 describe = %+v; want 4400 RequestLimitExceeded", a)
	}
	if err := b.srv.SetFaults(Faults{DescribeRateLimit: -1}); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if a := b.c.v3("DescribeInstances", map[string]any{}); a.code() != "" {
			t.Fatalf("unlimited describe = %q", a.code())
		}
	}
}

func TestBalanceAfter(t *testing.T) {
	ins := Generate(4)
	b := setup(t, Config{Faults: Faults{BalanceAfter: 2}}, ins...)
	wantCode(t, b.c.reset(genTC3, ins[0].ID, nil), "")
	wantCode(t, b.c.reset(genTC3, ins[1].ID, nil), "")
	wantCode(t, b.c.reset(genTC3, ins[2].ID, nil), "InvalidAccount.InsufficientBalance")
	o := b.c.reset(genV2Post, ins[3].ID, nil)
	wantCode(t, o, "OperationConstraints.AccountBalanceNotEnough")
	if o.v2Code != 5300 {
		t.Fatalf("v2 code = %d; want 5300", o.v2Code)
	}
	if h := b.srv.Stats().ResetCountHistogram(); h[1] != 2 {
		t.Fatalf("histogram = %v; want 2 accepted", h)
	}
}

func TestServerErrorRate(t *testing.T) {
	b := setup(t, Config{Faults: Faults{ServerErrorRate: 1}}, linuxA)
	body, _ := json.Marshal(map[string]any{"InstanceId": linuxA.ID})
	resp, out := b.c.do(b.c.tc3Request("ResetInstance", body, b.clk.Now().Unix()))
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(out, []byte("<html>")) {
		t.Fatalf("answer %d %s %q; want 502 text/html", resp.StatusCode, resp.Header.Get("Content-Type"), out)
	}
	st := b.srv.Stats()
	if st.ServerErrors != 1 || st.AcceptedResets[linuxA.ID] != 0 || len(st.Calls) != 0 {
		t.Fatalf("stats = %+v; want one 502 and no effect", st)
	}
}

func TestDrop(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run("after_apply_"+strconv.FormatBool(after), func(t *testing.T) {
			b := setup(t, Config{Faults: Faults{DropRate: 1, DropAfterApply: after}}, linuxA)
			body, _ := json.Marshal(map[string]any{"InstanceId": linuxA.ID})
			resp, err := b.c.hc.Do(b.c.tc3Request("ResetInstance", body, b.clk.Now().Unix()))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got an answer %d; want the connection closed", resp.StatusCode)
			}
			st := b.srv.Stats()
			want := map[bool]int{false: 0, true: 1}[after]
			if st.Dropped != 1 || st.AcceptedResets[linuxA.ID] != want {
				t.Fatalf("Dropped = %d, accepted = %d; want 1, %d", st.Dropped, st.AcceptedResets[linuxA.ID], want)
			}
			// The lost answer of an accepted call: the instance shows the
			// operation a retry would collide with.
			if after {
				if iv, _ := b.srv.Instance(linuxA.ID); iv.LatestOperationState != OperationOperating {
					t.Fatalf("after a dropped accepted reset: %+v", iv)
				}
			}
		})
	}
}

// TestLatency checks that a request waits on the clock and only then
// takes effect.
func TestLatency(t *testing.T) {
	b := setup(t, Config{Faults: Faults{Latency: 3 * time.Second}}, linuxA)
	done := make(chan outcome)
	go func() {
		body, _ := json.Marshal(map[string]any{"InstanceId": linuxA.ID})
		resp, err := b.c.hc.Do(b.c.tc3Request("ResetInstance", body, b.clk.Now().Unix()))
		if err != nil {
			done <- outcome{code: "transport: " + err.Error()}
			return
		}
		defer resp.Body.Close()
		var a v3Answer
		json.NewDecoder(resp.Body).Decode(&a)
		done <- outcome{code: a.code(), requestID: a.Response.RequestId}
	}()
	<-b.clk.waiting // the handler is now waiting out the latency
	if n := b.srv.Stats().AcceptedResets[linuxA.ID]; n != 0 {
		t.Fatalf("accepted %d resets before the latency passed", n)
	}
	b.clk.Advance(3 * time.Second)
	o := <-done
	wantCode(t, o, "")
	iv, _ := b.srv.Instance(linuxA.ID)
	if !iv.OperationEndsAt.Equal(testEpoch.Add(3*time.Second + ResetDurationDefault)) {
		t.Fatalf("operation ends %v; want it to start after the latency", iv.OperationEndsAt)
	}
}

// TestLatencyContextCancel checks that a client giving up during Latency
// frees the handler and causes no effect, both in-process and over HTTP.
func TestLatencyContextCancel(t *testing.T) {
	t.Run("in_process", func(t *testing.T) {
		clk := newFakeClock()
		s := New(Config{Clock: clk, Faults: Faults{Latency: time.Hour}})
		s.AddInstances(linuxA)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader("{}"))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r) // returns at once: ctx is already done
		if w.Body.Len() != 0 {
			t.Fatalf("abandoned request answered %q", w.Body.String())
		}
		if st := s.Stats(); st.Abandoned != 1 || st.TotalCalls != 1 {
			t.Fatalf("stats = %+v; want 1 abandoned call", st)
		}
	})
	t.Run("over_http", func(t *testing.T) {
		b := setup(t, Config{Faults: Faults{Latency: time.Hour}}, linuxA)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() {
			body, _ := json.Marshal(map[string]any{"InstanceId": linuxA.ID})
			req := b.c.tc3Request("ResetInstance", body, b.clk.Now().Unix()).WithContext(ctx)
			resp, err := b.c.hc.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		<-b.clk.waiting
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("client error = %v; want context.Canceled", err)
		}
		// Close waits for handlers: it would hang if the latency wait
		// ignored the request context.
		b.hs.Close()
		if st := b.srv.Stats(); st.Abandoned != 1 || st.AcceptedResets[linuxA.ID] != 0 {
			t.Fatalf("stats = %+v; want 1 abandoned and no reset", st)
		}
	})
}

// TestReplayAndExpiry covers nonce reuse and timestamp skew in both
// generations, and TC3's acceptance of an identical re-send.
func TestReplayAndExpiry(t *testing.T) {
	t.Run("v2_replay", func(t *testing.T) {
		b := setup(t, Config{}, linuxA)
		p := b.c.v1Params("DescribeInstances", nil)
		p.Set("Signature", testSignV1(http.MethodGet, b.c.host, PathV2, b.c.key, p))
		if a := decodeV2(t, second(b.c.sendSigned(http.MethodGet, PathV2, p))); *a.Code != 0 {
			t.Fatalf("first = %+v", a)
		}
		b.clk.Advance(4 * time.Minute)
		a := decodeV2(t, second(b.c.sendSigned(http.MethodGet, PathV2, p)))
		if *a.Code != 4500 || a.CodeDesc != "InvalidRequest.ReplayAttack" {
			t.Fatalf("replay = %+v; want 4500 InvalidRequest.ReplayAttack", a)
		}
		// Outside the window the timestamp itself is refused.
		b.clk.Advance(2 * time.Minute)
		a = decodeV2(t, second(b.c.sendSigned(http.MethodGet, PathV2, p)))
		if *a.Code != 4200 || a.CodeDesc != "AuthFailure.SignatureExpire" {
			t.Fatalf("expired = %+v; want 4200", a)
		}
		if st := b.srv.Stats(); st.ReplayRejected != 1 || st.ExpiredRejected != 1 || st.Calls["DescribeInstances"][testEpoch.Unix()] != 1 {
			t.Fatalf("stats = %+v", st)
		}
	})
	t.Run("nonce_reusable_after_window", func(t *testing.T) {
		b := setup(t, Config{ReplayWindow: time.Minute}, linuxA)
		p := b.c.v1Params("DescribeInstances", nil)
		b.c.sendV1(http.MethodPost, PathV2, p)
		b.clk.Advance(2 * time.Minute)
		p.Set("Timestamp", strconv.FormatInt(b.clk.Now().Unix(), 10))
		if a := decodeV2(t, second(b.c.sendV1(http.MethodPost, PathV2, p))); *a.Code != 0 {
			t.Fatalf("same nonce after the window = %+v; want success", a)
		}
	})
	t.Run("v1_replay", func(t *testing.T) {
		b := setup(t, Config{}, linuxA)
		p := b.c.v1Params("DescribeInstances", map[string]string{"Version": apiVersion})
		b.c.sendV1(http.MethodPost, PathV3, p)
		a := decodeV3(t, second(b.c.sendSigned(http.MethodPost, PathV3, p)))
		if a.code() != "InvalidRequest.ReplayAttack" {
			t.Fatalf("v1 replay = %q", a.code())
		}
	})
	t.Run("v2_future_timestamp", func(t *testing.T) {
		b := setup(t, Config{}, linuxA)
		p := b.c.v1Params("DescribeInstances", nil)
		p.Set("Timestamp", strconv.FormatInt(b.clk.Now().Add(6*time.Minute).Unix(), 10))
		if a := decodeV2(t, second(b.c.sendV1(http.MethodPost, PathV2, p))); a.CodeDesc != "AuthFailure.SignatureExpire" {
			t.Fatalf("future = %+v", a)
		}
	})
	t.Run("tc3_expired_and_resend", func(t *testing.T) {
		b := setup(t, Config{}, linuxA)
		body := []byte(`{}`)
		req := func() *http.Request { return b.c.tc3Request("DescribeInstances", body, testEpoch.Unix()) }
		for i := range 2 { // identical TC3 re-sends are fine, like SDK retries
			if a := decodeV3(t, second(b.c.do(req()))); a.code() != "" {
				t.Fatalf("send %d = %q", i, a.code())
			}
		}
		b.clk.Advance(5*time.Minute + time.Second)
		if a := decodeV3(t, second(b.c.do(req()))); a.code() != "AuthFailure.SignatureExpire" {
			t.Fatalf("expired = %q", a.code())
		}
	})
}

// second returns the body of a (response, body) pair.
func second(_ *http.Response, body []byte) []byte { return body }

func TestAuthFailures(t *testing.T) {
	t.Run("v2", func(t *testing.T) {
		b := setup(t, Config{}, linuxA)
		tests := []struct {
			name   string
			mutate func(*client)
			code   int
			desc   string
		}{
			{"wrong_key", func(c *client) { c.key = "nope" }, 4100, "AuthFailure.SignatureFailure"},
			{"host_without_port", func(c *client) { c.host = "127.0.0.1" }, 4100, "AuthFailure.SignatureFailure"},
			{"unknown_secret_id", func(c *client) { c.id = "AKIDother" }, 4104, "AuthFailure.SecretIdNotFound"},
			{"wrong_region", func(c *client) { c.region = "ap-shanghai" }, 4000, "InvalidParameter.Region"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := *b.c
				tt.mutate(&c)
				a := c.v2(http.MethodGet, "DescribeInstances", nil)
				if *a.Code != tt.code || a.CodeDesc != tt.desc {
					t.Fatalf("answer = %d %s; want %d %s", *a.Code, a.CodeDesc, tt.code, tt.desc)
				}
			})
		}
		if a := b.c.v2(http.MethodPost, "ResetInstance", map[string]string{"instanceId": linuxA.ID}); *a.Code != 6100 || a.CodeDesc != "InvalidAction" {
			t.Fatalf("v3 action on v2 = %+v; want 6100 InvalidAction", a)
		}
		if st := b.srv.Stats(); st.SignatureRejected != 2 {
			t.Fatalf("SignatureRejected = %d; want 2", st.SignatureRejected)
		}
	})
	t.Run("v3", func(t *testing.T) {
		b := setup(t, Config{}, linuxA)
		tests := []struct {
			name   string
			mutate func(*http.Request)
			code   string
		}{
			{"wrong_version", func(r *http.Request) { r.Header.Set("X-TC-Version", "2020-01-01") }, "NoSuchVersion"},
			{"unknown_action", func(r *http.Request) { r.Header.Set("X-TC-Action", "ResetInstances") }, "InvalidAction"},
			{"charset_added_after_signing", func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset=utf-8") }, "AuthFailure.SignatureFailure"},
			{"body_changed", func(r *http.Request) {
				r.Body = http.NoBody
				r.ContentLength = 0
				r.GetBody = nil
			}, "AuthFailure.SignatureFailure"},
			{"wrong_region", func(r *http.Request) { r.Header.Set("X-TC-Region", "ap-shanghai") }, "UnsupportedRegion"},
			{"no_region", func(r *http.Request) { r.Header.Del("X-TC-Region") }, "MissingParameter"},
			{"token", func(r *http.Request) { r.Header.Set("X-TC-Token", "t") }, "AuthFailure.TokenFailure"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req := b.c.tc3Request("DescribeInstances", []byte(`{"Limit":1}`), b.clk.Now().Unix())
				tt.mutate(req)
				if a := decodeV3(t, second(b.c.do(req))); a.code() != tt.code {
					t.Fatalf("answer = %q; want %q", a.code(), tt.code)
				}
			})
		}
		c := *b.c
		c.id = "AKIDother"
		if a := c.v3("DescribeInstances", map[string]any{}); a.code() != "AuthFailure.SecretIdNotFound" {
			t.Fatalf("unknown id = %q", a.code())
		}
		p := b.c.v1Params("DescribeInstances", map[string]string{"Version": "2016-01-01"})
		if a := decodeV3(t, second(b.c.sendV1(http.MethodPost, PathV3, p))); a.code() != "NoSuchVersion" {
			t.Fatalf("v1 version = %q", a.code())
		}
	})
}

// TestSecretInURL checks the client-bug detector: passwords and keys in a
// URL query are counted, in a body they are not.
func TestSecretInURL(t *testing.T) {
	b := setup(t, Config{}, linuxA, windowsD)
	wantCode(t, b.c.reset(genV2Post, linuxA.ID, map[string]string{"password": "abc123!@#"}), "")
	if n := b.srv.Stats().SecretInURL; n != 0 {
		t.Fatalf("POST body counted as secret in URL: %d", n)
	}
	b.c.reset(genV2Get, windowsD.ID, map[string]string{"password": "Abc123!@#xyz"})
	p := b.c.v1Params("ResetInstance", map[string]string{"Version": apiVersion, "InstanceId": linuxB.ID, "LoginSettings.Password": "x"})
	b.c.sendV1(http.MethodGet, PathV3, p)
	req, _ := http.NewRequest(http.MethodGet, b.c.base+"/?SecretKey=k", nil)
	b.c.do(req)
	if n := b.srv.Stats().SecretInURL; n != 3 {
		t.Fatalf("SecretInURL = %d; want 3", n)
	}
}

func TestDescribe(t *testing.T) {
	ins := Generate(150)
	b := setup(t, Config{Faults: Faults{DescribeRateLimit: -1}}, ins...)
	ids := func(n int) []string {
		var out []string
		for _, in := range ins[:n] {
			out = append(out, in.ID)
		}
		return out
	}
	t.Run("v3_paging", func(t *testing.T) {
		a := b.c.v3("DescribeInstances", map[string]any{})
		if a.Response.TotalCount != 150 || len(a.Response.InstanceSet) != 20 {
			t.Fatalf("default page: total %d, %d rows; want 150, 20", a.Response.TotalCount, len(a.Response.InstanceSet))
		}
		a = b.c.v3("DescribeInstances", map[string]any{"Offset": 140, "Limit": 100})
		if len(a.Response.InstanceSet) != 10 || a.Response.InstanceSet[0].InstanceId != ins[140].ID {
			t.Fatalf("last page: %d rows starting %v", len(a.Response.InstanceSet), a.Response.InstanceSet)
		}
		row := a.Response.InstanceSet[0]
		if row.Placement.Zone != ins[140].Zone || row.LatestOperation != nil || row.InstanceState != ins[140].State {
			t.Fatalf("row = %+v; want zone %s, null LatestOperation", row, ins[140].Zone)
		}
	})
	t.Run("v3_ids", func(t *testing.T) {
		a := b.c.v3("DescribeInstances", map[string]any{"InstanceIds": append(ids(100)[:99], "ins-00000000"), "Limit": 100})
		if a.Response.TotalCount != 99 {
			t.Fatalf("TotalCount = %d; want 99 (unknown IDs are absent)", a.Response.TotalCount)
		}
	})
	t.Run("v3_filters", func(t *testing.T) {
		a := b.c.v3("DescribeInstances", map[string]any{"Filters": []map[string]any{{"Name": "instance-id", "Values": []string{ins[3].ID, ins[7].ID}}}})
		if a.Response.TotalCount != 2 {
			t.Fatalf("TotalCount = %d; want 2", a.Response.TotalCount)
		}
		a = b.c.v1("DescribeInstances", map[string]string{"Filters.0.Name": "zone", "Filters.0.Values.0": "ap-guangzhou-3", "Limit": "100", "Offset": "0"})
		if a.code() != "" || a.Response.TotalCount == 0 || a.Response.TotalCount == 150 {
			t.Fatalf("zone filter: %q, total %d", a.code(), a.Response.TotalCount)
		}
	})
	t.Run("v2_ids_and_paging", func(t *testing.T) {
		p := map[string]string{"limit": "100", "offset": "0"}
		for i, id := range ids(3) {
			p["instanceIds."+strconv.Itoa(i)] = id
		}
		a := b.c.v2(http.MethodGet, "DescribeInstances", p)
		if *a.Code != 0 || a.CodeDesc != "Success" || a.TotalCount != 3 || a.InstanceSet[1].UnInstanceID != ins[1].ID || !strings.HasPrefix(a.InstanceSet[1].InstanceID, "qcvm") {
			t.Fatalf("v2 describe = %+v", a)
		}
	})
	errTests := []struct {
		name string
		call func() string
		want string
	}{
		{"v3_too_many_ids", func() string {
			return b.c.v3("DescribeInstances", map[string]any{"InstanceIds": append(ids(100), "ins-00000000")}).code()
		}, "InvalidParameterValue.LimitExceeded"},
		{"v3_ids_and_filters", func() string {
			return b.c.v3("DescribeInstances", map[string]any{"InstanceIds": ids(1), "Filters": []map[string]any{{"Name": "zone", "Values": []string{"x"}}}}).code()
		}, "InvalidParameter.InvalidParameterCoexistInstanceIdsFilters"},
		{"v3_limit_over_100", func() string { return b.c.v3("DescribeInstances", map[string]any{"Limit": 101}).code() }, "InvalidParameterValue"},
		{"v3_limit_as_string", func() string { return b.c.v3("DescribeInstances", map[string]any{"Limit": "10"}).code() }, "InvalidParameter"},
		{"v3_ids_not_array", func() string { return b.c.v3("DescribeInstances", map[string]any{"InstanceIds": ins[0].ID}).code() }, "InvalidParameter"},
		{"v3_malformed_id", func() string {
			return b.c.v3("DescribeInstances", map[string]any{"InstanceIds": []string{"ins-1"}}).code()
		}, "InvalidInstanceId.Malformed"},
		{"v3_unknown_filter", func() string {
			return b.c.v3("DescribeInstances", map[string]any{"Filters": []map[string]any{{"Name": "color", "Values": []string{"x"}}}}).code()
		}, "InvalidFilter"},
		{"v2_too_many_ids", func() string {
			p := map[string]string{}
			for i, id := range ids(101) {
				p["instanceIds."+strconv.Itoa(i)] = id
			}
			return b.c.v2(http.MethodPost, "DescribeInstances", p).CodeDesc
		}, "InvalidParameter"},
		{"v2_one_based_ids", func() string {
			return b.c.v2(http.MethodPost, "DescribeInstances", map[string]string{"instanceIds.1": ins[0].ID}).CodeDesc
		}, "InvalidParameter"},
		{"v2_limit_over_100", func() string {
			return b.c.v2(http.MethodPost, "DescribeInstances", map[string]string{"limit": "101"}).CodeDesc
		}, "InvalidParameter"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.call(); got != tt.want {
				t.Fatalf("answer = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestV2StatusFilter checks the v2 status filter finds reinstalling instances.
func TestV2StatusFilter(t *testing.T) {
	b := setup(t, Config{}, linuxA, linuxB)
	wantCode(t, b.c.reset(genV2Post, linuxB.ID, nil), "")
	a := b.c.v2(http.MethodPost, "DescribeInstances", map[string]string{"status": "14"})
	if a.TotalCount != 1 || a.InstanceSet[0].UnInstanceID != linuxB.ID || a.InstanceSet[0].Status != 14 {
		t.Fatalf("status=14: %+v", a)
	}
}

// TestV2WireShape pins the raw legacy bodies: code is a JSON integer and
// requestId a string.
func TestV2WireShape(t *testing.T) {
	b := setup(t, Config{}, linuxA)
	_, body := b.c.sendV1(http.MethodPost, PathV2, b.c.v1Params("ResetInstances", map[string]string{"instanceId": linuxA.ID}))
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["code"]) != "0" || string(raw["codeDesc"]) != `"Success"` || string(raw["message"]) != `""` || !strings.HasPrefix(string(raw["requestId"]), `"`) {
		t.Fatalf("v2 body = %s", body)
	}
	_, body = b.c.sendV1(http.MethodPost, PathV2, b.c.v1Params("ResetInstances", map[string]string{"instanceId": "ins-00000000"}))
	if !bytes.Contains(body, []byte(`"code":5000`)) {
		t.Fatalf("v2 error body = %s; want an integer code", body)
	}
}

// TestTransitional checks Version=2017-03-12 on the v2 path is answered as
// API 3.0, as the transitional generation was.
func TestTransitional(t *testing.T) {
	b := setup(t, Config{}, linuxA)
	p := b.c.v1Params("ResetInstance", map[string]string{"Version": apiVersion, "InstanceId": linuxA.ID})
	a := decodeV3(t, second(b.c.sendV1(http.MethodPost, PathV2, p)))
	if a.code() != "" {
		t.Fatalf("transitional reset = %q", a.code())
	}
	if n := b.srv.Stats().AcceptedResets[linuxA.ID]; n != 1 {
		t.Fatalf("accepted = %d; want 1", n)
	}
}

func TestUnsupportedProtocol(t *testing.T) {
	b := setup(t, Config{}, linuxA)
	req, _ := http.NewRequest(http.MethodPost, b.c.base+PathV2, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "text/plain")
	if a := decodeV2(t, second(b.c.do(req))); *a.Code != 4600 {
		t.Fatalf("text/plain on v2 = %+v; want 4600", a)
	}
	req, _ = http.NewRequest(http.MethodPut, b.c.base+"/", strings.NewReader("a=b"))
	if a := decodeV3(t, second(b.c.do(req))); a.code() != "UnsupportedProtocol" {
		t.Fatalf("PUT on / = %q", a.code())
	}
	req, _ = http.NewRequest(http.MethodGet, b.c.base+"/v3/other", nil)
	resp, _ := b.c.do(req)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown path = %d; want 404", resp.StatusCode)
	}
}

func TestAdmin(t *testing.T) {
	b := setup(t, Config{}, linuxA, windowsD)
	wantCode(t, b.c.reset(genTC3, linuxA.ID, nil), "")
	get := func(path string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, b.c.base+path, nil)
		return b.c.do(req)
	}
	_, body := get(PathAdminStats)
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("stats JSON %s: %v", body, err)
	}
	if st.AcceptedResets[linuxA.ID] != 1 || st.Calls["ResetInstance"][testEpoch.Unix()] != 1 || st.TotalCalls != 1 {
		t.Fatalf("admin stats = %s", body)
	}
	for _, key := range []string{`"accepted_resets"`, `"reset_times"`, `"calls"`, `"max_calls_per_second"`, `"rate_limited"`, `"errors"`, `"signature_rejected"`, `"replay_rejected"`, `"secret_in_url"`, `"total_calls"`} {
		if !bytes.Contains(body, []byte(key)) {
			t.Errorf("admin stats lacks %s", key)
		}
	}
	_, body = get(PathAdminInstance)
	var views []InstanceView
	if err := json.Unmarshal(body, &views); err != nil || len(views) != 2 || views[0].ID != linuxA.ID || views[0].LatestOperationState != OperationOperating {
		t.Fatalf("admin instances = %s (%v)", body, err)
	}
	if resp, _ := get("/admin/nothing"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown admin path = %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, b.c.base+PathAdminStats, nil)
	if resp, _ := b.c.do(req); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST admin = %d", resp.StatusCode)
	}
	// Admin calls are not API calls.
	if st := b.srv.Stats(); st.TotalCalls != 1 {
		t.Fatalf("TotalCalls = %d; want 1", st.TotalCalls)
	}
}

// TestWaveOrdering shows how tests prove ordering from ResetTimes.
func TestWaveOrdering(t *testing.T) {
	ins := Generate(6)
	b := setup(t, Config{}, ins...)
	for i, in := range ins {
		if i == 3 {
			b.clk.Advance(time.Minute) // wave 2
		}
		wantCode(t, b.c.reset(genTC3, in.ID, nil), "")
	}
	st := b.srv.Stats()
	for _, in := range ins[:3] {
		for _, later := range ins[3:] {
			if !st.ResetTimes[in.ID][0].Before(st.ResetTimes[later.ID][0]) {
				t.Fatalf("wave 1 %s not before wave 2 %s", in.ID, later.ID)
			}
		}
	}
	if h := st.ResetCountHistogram(); !reflect.DeepEqual(h, map[int]int{1: 6}) {
		t.Fatalf("histogram = %v", h)
	}
}

// TestConcurrent hammers the server from many goroutines for the race
// detector; every instance must be reset exactly once.
func TestConcurrent(t *testing.T) {
	ins := Generate(64)
	b := setup(t, Config{Faults: Faults{ResetRateLimit: -1, DescribeRateLimit: -1}}, ins...)
	errc := make(chan error, len(ins))
	for _, in := range ins {
		go func() {
			c := *b.c
			c.t = t
			body, _ := json.Marshal(map[string]any{"InstanceId": in.ID})
			resp, err := c.hc.Do(c.tc3Request("ResetInstance", body, c.clk.Now().Unix()))
			if err != nil {
				errc <- err
				return
			}
			defer resp.Body.Close()
			var a v3Answer
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || a.code() != "" {
				errc <- fmt.Errorf("%s: %v %q", in.ID, err, a.code())
				return
			}
			errc <- nil
		}()
	}
	for range ins {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if h := b.srv.Stats().ResetCountHistogram(); !reflect.DeepEqual(h, map[int]int{1: len(ins)}) {
		t.Fatalf("histogram = %v", h)
	}
}

// TestEchoParams checks the careless-upstream fault: error answers quote
// the request's password raw and escaped, in every way a reset can be
// sent; without the fault, and without a password, nothing is quoted.
func TestEchoParams(t *testing.T) {
	const pw = `Ab&'c<d>"e%f+1`
	forms := []string{
		pw,
		`Ab\u0026'c\u003cd\u003e\"e%f+1`,   // JSON string escaping
		`Ab&amp;&#39;c&lt;d&gt;&#34;e%f+1`, // html.EscapeString
		`Ab&#x26;&#x27;c&#x3c;d&#x3e;&#x22;e&#x25;f&#x2b;1`, // hex entities
		`Ab%26%27c%3Cd%3E%22e%25f%2B1`,                      // url.QueryEscape
		`Ab&'c<d>"`,                                         // cut in half
	}
	for _, g := range allGens {
		t.Run(string(g), func(t *testing.T) {
			name := map[bool]string{true: "password", false: "LoginSettings.Password"}[g == genV2Get || g == genV2Post]
			b := setup(t, Config{Faults: Faults{EchoParams: true}}, linuxA)
			o := b.c.reset(g, "ins-ffff9999", map[string]string{name: pw})
			wantCode(t, o, "InvalidInstanceId.NotFound")
			for _, f := range forms {
				if !strings.Contains(o.message, f) {
					t.Errorf("message %q lacks %q", o.message, f)
				}
			}
			if o := b.c.reset(g, "ins-ffff9999", nil); strings.Contains(o.message, "Password") {
				t.Errorf("without a password, message = %q; want no echo", o.message)
			}
			if err := b.srv.SetFaults(Faults{}); err != nil {
				t.Fatal(err)
			}
			if o := b.c.reset(g, "ins-ffff9999", map[string]string{name: pw}); strings.Contains(o.message, "Ab&") {
				t.Errorf("without EchoParams, message = %q; want no password", o.message)
			}
		})
	}
	t.Run("bad_gateway", func(t *testing.T) {
		b := setup(t, Config{Faults: Faults{EchoParams: true, ServerErrorRate: 1}}, linuxA)
		body, _ := json.Marshal(map[string]any{"InstanceId": linuxA.ID, "LoginSettings": map[string]string{"Password": pw}})
		resp, out := b.c.do(b.c.tc3Request("ResetInstance", body, b.clk.Now().Unix()))
		if resp.StatusCode != http.StatusBadGateway || !bytes.Contains(out, []byte("Ab&amp;&#39;c")) {
			t.Fatalf("answer %d %q; want a 502 page quoting the password", resp.StatusCode, out)
		}
	})
}
