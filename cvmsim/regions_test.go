package cvmsim

import (
	"testing"
)

// TestRegions: one simulator serves two regions; an action sees only the
// instances of its request's region, and Stats.CallsBy records each
// caller's calls per action, region and SecretId.
func TestRegions(t *testing.T) {
	sh := Instance{ID: "ins-5a5a0001", Zone: "ap-shanghai-2", Region: "ap-shanghai", ImageID: ImageLinuxOld, OS: OSLinux, State: StateRunning}
	b := setup(t, Config{Regions: []string{"ap-shanghai"}}, linuxA, sh)
	gz, shc := b.c, *b.c
	shc.region = "ap-shanghai"
	for _, g := range []gen{genTC3, genV2Post} {
		t.Run(string(g), func(t *testing.T) {
			// Each region finds its own instance and not the other's.
			if v := gz.describe(g, linuxA.ID); v.image != ImageLinuxOld {
				t.Fatalf("guangzhou describe = %+v", v)
			}
			if v := shc.describe(g, sh.ID); v.image != ImageLinuxOld {
				t.Fatalf("shanghai describe = %+v", v)
			}
			a := gz.v3("DescribeInstances", map[string]any{"InstanceIds": []string{sh.ID}})
			if a.code() != "" || len(a.Response.InstanceSet) != 0 {
				t.Fatalf("guangzhou sees the shanghai instance: %+v", a)
			}
		})
	}
	if o := gz.reset(genTC3, sh.ID, nil); o.code != errInstanceNotFound.v3 {
		t.Fatalf("reset of a shanghai instance in guangzhou = %q, want %s", o.code, errInstanceNotFound.v3)
	}
	wantCode(t, shc.reset(genTC3, sh.ID, nil), "")
	other := shc
	other.region = "ap-beijing"
	wantCode(t, other.reset(genTC3, sh.ID, nil), errUnsupportedRegion.v3)

	st := b.srv.Stats()
	if st.AcceptedResets[sh.ID] != 1 || st.AcceptedResets[linuxA.ID] != 0 {
		t.Fatalf("accepted resets = %v", st.AcceptedResets)
	}
	for _, tc := range []struct {
		action, region string
		want           int
	}{
		{"ResetInstance", "ap-shanghai", 1},
		{"ResetInstance", "ap-guangzhou", 1},
		{"ResetInstance", "ap-beijing", 1},
		{"DescribeInstances", "ap-shanghai", 2},
		{"DescribeInstances", "ap-guangzhou", 4},
	} {
		if got := st.MaxPerSecond(tc.action, tc.region, SecretIDDefault); got != tc.want {
			t.Errorf("MaxPerSecond(%s, %s) = %d, want %d (CallsBy %v)", tc.action, tc.region, got, tc.want, st.CallsBy)
		}
	}
}
