package rollout

import "testing"

func TestPreflight(t *testing.T) {
	const target = "img-new"
	running := Observed{Found: true, ImageID: "img-old", State: "RUNNING"}
	tests := []struct {
		name     string
		o        Observed
		matching bool
		want     Verdict
	}{
		{"not found", Observed{}, false, Refuse},
		{"old image", running, false, Proceed},
		{"stopped", Observed{Found: true, ImageID: "img-old", State: "STOPPED"}, false, Proceed},
		{"on target", Observed{Found: true, ImageID: target, State: "RUNNING"}, false, Skip},
		{"on target, reset matching", Observed{Found: true, ImageID: target, State: "RUNNING"}, true, Proceed},
		{"terminating", Observed{Found: true, ImageID: "img-old", State: "TERMINATING"}, false, Refuse},
		// A reinstall that runs is never Proceed: it may be ours from a lost record.
		{"v3 reset operating", Observed{Found: true, ImageID: "img-old", State: "RUNNING", Resetting: true, Op: "ResetInstance", OpState: "OPERATING", OpRequestID: "r1"}, false, Await},
		{"v3 reset operating, matching", Observed{Found: true, ImageID: target, State: "RUNNING", Resetting: true, Op: "ResetInstance", OpState: "OPERATING", OpRequestID: "r1"}, true, Await},
		{"v3 reboot operating", Observed{Found: true, ImageID: "img-old", State: "REBOOTING", Resetting: true, Op: "RebootInstances", OpState: "OPERATING"}, false, Await},
		{"v2 status 14", Observed{Found: true, ImageID: "img-old", State: "RESETTING", Resetting: true}, false, Await},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, why := Preflight(target, tt.o, tt.matching); got != tt.want {
				t.Errorf("Preflight = %v (%s); want %v", got, why, tt.want)
			}
		})
	}
}

func TestBeforeCall(t *testing.T) {
	first := Prior{Target: "img-new", Image: "img-old", OpRequestID: "r-before"}
	retry := first
	retry.Judged = "r-ours"
	awaited := Prior{Target: "img-new", Image: "img-old"} // pre-flight saw an operation running
	same := Prior{Image: "img-same", OpRequestID: "r-before"}
	obs := func(img, op, state, rid string) Observed {
		return Observed{Found: true, ImageID: img, State: "RUNNING", Resetting: state == "OPERATING", Op: op, OpState: state, OpRequestID: rid}
	}
	tests := []struct {
		name string
		p    Prior
		o    Observed
		want CallVerdict
	}{
		{"gone", first, Observed{}, Gone},
		{"untouched since pre-flight", first, obs("img-old", "StartInstances", "SUCCESS", "r-before"), Call},
		{"no operation ever", first, obs("img-old", "", "", ""), Call},
		{"reset running (lost record, re-apply, abort)", first, obs("img-old", "ResetInstance", "OPERATING", "r-x"), Adopt},
		{"reset running that pre-flight saw", awaited, obs("img-old", "ResetInstance", "OPERATING", "r-x"), Adopt},
		{"awaited reset finished", awaited, obs("img-new", "ResetInstance", "SUCCESS", "r-x"), Adopt},
		{"awaited same-image reset finished", Prior{Image: "img-same"}, obs("img-same", "ResetInstance", "SUCCESS", "r-x"), Adopt},
		{"reboot running", first, obs("img-old", "RebootInstances", "OPERATING", "r-y"), Wait},
		{"reset finished since pre-flight (restored snapshot)", first, obs("img-new", "ResetInstance", "SUCCESS", "r-x"), Adopt},
		{"same-image reset finished since pre-flight", same, obs("img-same", "ResetInstance", "SUCCESS", "r-x"), Adopt},
		{"reset failed since pre-flight is judged, not repeated", first, obs("img-old", "ResetInstance", "FAILED", "r-x"), Adopt},
		{"ResetInstances (batch action) counts too", first, obs("img-old", "ResetInstances", "SUCCESS", "r-x"), Adopt},
		{"retry: judged reset failed", retry, obs("img-old", "ResetInstance", "FAILED", "r-ours"), Call},
		{"retry: judged reset ended off target", retry, obs("img-other", "ResetInstance", "SUCCESS", "r-ours"), Call},
		{"retry: judged reset finished on target after all", retry, obs("img-new", "ResetInstance", "SUCCESS", "r-ours"), Adopt},
		{"retry: judged reset still running", retry, obs("img-old", "ResetInstance", "OPERATING", "r-ours"), Adopt},
		{"retry: a newer reset than the judged one", retry, obs("img-new", "ResetInstance", "SUCCESS", "r-z"), Adopt},
		{"legacy: status 14", first, Observed{Found: true, ImageID: "img-old", State: "RESETTING", Resetting: true}, Adopt},
		{"legacy: on target since pre-flight", Prior{Target: "img-new", Image: "img-old"}, Observed{Found: true, ImageID: "img-new", State: "RUNNING"}, Adopt},
		{"legacy: untouched", Prior{Target: "img-new", Image: "img-old"}, Observed{Found: true, ImageID: "img-old", State: "RUNNING"}, Call},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, why := BeforeCall(tt.p, tt.o); got != tt.want {
				t.Errorf("BeforeCall = %v (%s); want %v", got, why, tt.want)
			}
		})
	}
}
