package worker

import (
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
)

func TestReconcile(t *testing.T) {
	const target, old, oldOp = "img-new00001", "img-old00001", "req-before"
	tests := []struct {
		name string
		gen  cvm.Generation
		in   *cvm.Instance
		want landing
	}{
		{"v3-new-reset-operating", cvm.V3, &cvm.Instance{ImageID: old, State: "RUNNING", LatestOperation: "ResetInstance", LatestOperationState: "OPERATING", LatestOperationRequestID: "req-ours"}, landed},
		{"v3-new-reset-done", cvm.V3, &cvm.Instance{ImageID: target, State: "RUNNING", LatestOperation: "ResetInstance", LatestOperationState: "SUCCESS", LatestOperationRequestID: "req-ours"}, landed},
		{"v3-unchanged", cvm.V3, &cvm.Instance{ImageID: old, State: "RUNNING", LatestOperation: "StartInstances", LatestOperationState: "SUCCESS", LatestOperationRequestID: oldOp}, notLanded},
		{"v3-someone-else-rebooting", cvm.V3, &cvm.Instance{ImageID: old, State: "REBOOTING", LatestOperation: "RebootInstances", LatestOperationState: "OPERATING", LatestOperationRequestID: "req-other"}, unknown},
		{"v3-unchanged-but-operating", cvm.V3, &cvm.Instance{ImageID: old, State: "RUNNING", LatestOperationState: "OPERATING", LatestOperationRequestID: oldOp}, unknown},
		{"v3-gone", cvm.V3, nil, unknown},
		{"v2-reinstalling", cvm.V2, &cvm.Instance{ImageID: old, V2Status: 14, State: "RESETTING"}, landed},
		{"v2-on-target", cvm.V2, &cvm.Instance{ImageID: target, V2Status: 2, State: "RUNNING"}, landed},
		{"v2-unchanged", cvm.V2, &cvm.Instance{ImageID: old, V2Status: 2, State: "RUNNING"}, notLanded},
		{"v2-other-image", cvm.V2, &cvm.Instance{ImageID: "img-elsewhere", V2Status: 2, State: "RUNNING"}, unknown},
		{"v3-unchanged-since-awaited-reboot", cvm.V3, &cvm.Instance{ImageID: old, State: "RUNNING", LatestOperation: "RebootInstances", LatestOperationState: "SUCCESS", LatestOperationRequestID: oldOp}, notLanded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, why := reconcile(tt.gen, target, old, oldOp, tt.in)
			if got != tt.want {
				t.Errorf("reconcile = %v (%s); want %v", got, why, tt.want)
			}
		})
	}
	// A same-image reinstall on the legacy API leaves no trace once done.
	if got, _, why := reconcile(cvm.V2, old, old, "", &cvm.Instance{ImageID: old, V2Status: 2, State: "RUNNING"}); got != unknown {
		t.Errorf("v2 same image unchanged: reconcile = %v (%s); want unknown", got, why)
	}
}

func TestVerifyCheck(t *testing.T) {
	const target, rid = "img-new00001", "req-ours"
	called := time.Unix(1000, 0)
	early, late := called.Add(time.Second), called.Add(time.Hour)
	const timeout, grace = 20 * time.Minute, 30 * time.Second
	tests := []struct {
		name string
		gen  cvm.Generation
		now  time.Time
		in   *cvm.Instance
		want verdict
	}{
		{"v3-success", cvm.V3, early, &cvm.Instance{ImageID: target, State: "RUNNING", LatestOperationState: "SUCCESS", LatestOperationRequestID: rid}, verified},
		{"v3-operating", cvm.V3, early, &cvm.Instance{ImageID: "img-old", State: "RUNNING", LatestOperationState: "OPERATING", LatestOperationRequestID: rid}, waitMore},
		{"v3-not-yet-recorded", cvm.V3, early, &cvm.Instance{ImageID: "img-old", State: "RUNNING", LatestOperationState: "SUCCESS", LatestOperationRequestID: "req-before"}, waitMore},
		{"v3-failed", cvm.V3, early, &cvm.Instance{ImageID: "img-old", State: "RUNNING", LatestOperationState: "FAILED", LatestOperationRequestID: rid}, verifyFailed},
		{"v3-success-wrong-image", cvm.V3, early, &cvm.Instance{ImageID: "img-other", State: "RUNNING", LatestOperationState: "SUCCESS", LatestOperationRequestID: rid}, verifyFailed},
		{"v3-success-still-booting", cvm.V3, early, &cvm.Instance{ImageID: target, State: "STARTING", LatestOperationState: "SUCCESS", LatestOperationRequestID: rid}, waitMore},
		{"timeout", cvm.V3, late, &cvm.Instance{ImageID: "img-old", State: "RUNNING", LatestOperationState: "OPERATING", LatestOperationRequestID: rid}, verifyFailed},
		{"late-sweep-sees-success", cvm.V3, late, &cvm.Instance{ImageID: target, State: "RUNNING", LatestOperationState: "SUCCESS", LatestOperationRequestID: rid}, verified},
		{"not-returned-yet", cvm.V3, early, nil, waitMore},
		{"v2-reinstalling", cvm.V2, early, &cvm.Instance{ImageID: "img-old", V2Status: 14, State: "RESETTING"}, waitMore},
		{"v2-done", cvm.V2, early, &cvm.Instance{ImageID: target, V2Status: 2, State: "RUNNING"}, verified},
		{"v2-old-image-within-grace", cvm.V2, early, &cvm.Instance{ImageID: "img-old", V2Status: 2, State: "RUNNING"}, waitMore},
		{"v2-old-image-after-grace", cvm.V2, called.Add(time.Minute), &cvm.Instance{ImageID: "img-old", V2Status: 2, State: "RUNNING"}, verifyFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, code, msg := verifyCheck(tt.gen, target, "img-old", rid, called, tt.now, timeout, grace, tt.in)
			if got != tt.want {
				t.Errorf("verifyCheck = %v (%s %s); want %v", got, code, msg, tt.want)
			}
		})
	}
}
