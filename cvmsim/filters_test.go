package cvmsim

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// filtered is a DescribeInstances answer with the fields filters read.
type filtered struct {
	Response struct {
		Error       *struct{ Code string }
		TotalCount  int
		InstanceSet []struct {
			InstanceId   string
			InstanceName string
			Placement    struct {
				Zone      string
				ProjectId int
			}
			VirtualPrivateCloud struct{ VpcId, SubnetId string }
			InstanceChargeType  string
			Tags                []struct{ Key, Value string }
		}
	}
}

func (b *testBundle) describeFiltered(t *testing.T, params map[string]any) filtered {
	t.Helper()
	body, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	_, out := b.c.do(b.c.tc3Request("DescribeInstances", body, b.c.clk.Now().Unix()))
	var a filtered
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	return a
}

func filters(kv ...any) map[string]any {
	var fs []map[string]any
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, map[string]any{"Name": kv[i], "Values": kv[i+1]})
	}
	return map[string]any{"Filters": fs, "Limit": 100}
}

// TestDescribeFilterSemantics: each filter name matches as documented,
// filters AND, values OR, against instances with known attributes.
func TestDescribeFilterSemantics(t *testing.T) {
	mk := func(id, zone, name string, tags map[string]string, vpc, subnet string, project int, charge string) Instance {
		return Instance{ID: id, Zone: zone, ImageID: ImageLinuxOld, OS: OSLinux, State: StateRunning, Name: name,
			Tags: tags, VpcID: vpc, SubnetID: subnet, ProjectID: project, ChargeType: charge}
	}
	a := mk("ins-aaaaaaa1", "ap-guangzhou-3", "web-prod-1", map[string]string{"role": "web", "env": "prod"}, "vpc-aaaaaaa1", "subnet-aaaaaaa1", 0, "")
	bb := mk("ins-aaaaaaa2", "ap-guangzhou-4", "web-staging-1", map[string]string{"role": "web", "env": "staging"}, "vpc-aaaaaaa1", "subnet-aaaaaaa2", 1001, "PREPAID")
	c := mk("ins-aaaaaaa3", "ap-guangzhou-3", "db-prod-1", map[string]string{"role": "db", "env": "prod", "fleetreset:protect": "true"}, "vpc-aaaaaaa2", "subnet-aaaaaaa3", 0, "")
	d := mk("ins-aaaaaaa4", "ap-guangzhou-6", "bare", nil, "", "", 0, "")
	b := setup(t, Config{}, a, bb, c, d)
	tests := []struct {
		name   string
		params map[string]any
		want   []string
	}{
		{"tag_value", filters("tag:role", []string{"web"}), []string{a.ID, bb.ID}},
		{"two_tags_and", filters("tag:role", []string{"web"}, "tag:env", []string{"prod"}), []string{a.ID}},
		{"values_or", filters("tag:role", []string{"web", "db"}), []string{a.ID, bb.ID, c.ID}},
		{"tag_key", filters("tag-key", []string{"fleetreset:protect"}), []string{c.ID}},
		{"tag_value_any_key", filters("tag-value", []string{"staging"}), []string{bb.ID}},
		{"zone", filters("zone", []string{"ap-guangzhou-3"}), []string{a.ID, c.ID}},
		{"name_contains", filters("instance-name", []string{"prod"}), []string{a.ID, c.ID}},
		{"vpc", filters("vpc-id", []string{"vpc-aaaaaaa1"}), []string{a.ID, bb.ID}},
		{"subnet", filters("subnet-id", []string{"subnet-aaaaaaa3"}), []string{c.ID}},
		{"project", filters("project-id", []string{"1001"}), []string{bb.ID}},
		{"charge_default", filters("instance-charge-type", []string{"POSTPAID_BY_HOUR"}), []string{a.ID, c.ID, d.ID}},
		{"image", filters("image-id", []string{ImageLinuxOld}, "zone", []string{"ap-guangzhou-6"}), []string{d.ID}},
		{"no_match", filters("tag:role", []string{"cache"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans := b.describeFiltered(t, tt.params)
			if ans.Response.Error != nil {
				t.Fatalf("error %s", ans.Response.Error.Code)
			}
			var got []string
			for _, in := range ans.Response.InstanceSet {
				got = append(got, in.InstanceId)
			}
			if !slices.Equal(got, tt.want) || ans.Response.TotalCount != len(tt.want) {
				t.Errorf("got %v (total %d); want %v", got, ans.Response.TotalCount, tt.want)
			}
		})
	}
	// The answer carries what the filters read.
	ans := b.describeFiltered(t, filters("instance-id", []string{bb.ID}))
	in := ans.Response.InstanceSet[0]
	if in.Placement.ProjectId != 1001 || in.VirtualPrivateCloud.SubnetId != "subnet-aaaaaaa2" || in.InstanceChargeType != "PREPAID" ||
		len(in.Tags) != 2 || in.Tags[0] != (struct{ Key, Value string }{"env", "staging"}) {
		t.Errorf("instance = %+v", in)
	}
}

// TestDescribeFilterPaging: Offset and Limit page a filtered list whose
// TotalCount counts every match.
func TestDescribeFilterPaging(t *testing.T) {
	fleet := Generate(1000)
	b := setup(t, Config{}, fleet...)
	want := 0
	for _, in := range fleet {
		if in.Tags["role"] == "web" && in.Tags["env"] == "prod" {
			want++
		}
	}
	seen := map[string]bool{}
	for offset := 0; ; offset += 100 {
		p := filters("tag:role", []string{"web"}, "tag:env", []string{"prod"})
		p["Offset"] = offset
		ans := b.describeFiltered(t, p)
		if ans.Response.TotalCount != want {
			t.Fatalf("TotalCount = %d; want %d", ans.Response.TotalCount, want)
		}
		if len(ans.Response.InstanceSet) == 0 {
			break
		}
		for _, in := range ans.Response.InstanceSet {
			if seen[in.InstanceId] {
				t.Fatalf("%s on two pages", in.InstanceId)
			}
			seen[in.InstanceId] = true
		}
	}
	if len(seen) != want || want < 100 {
		t.Errorf("paged %d of %d", len(seen), want)
	}
}

// TestDescribeFilterErrors: the documented refusals.
func TestDescribeFilterErrors(t *testing.T) {
	b := setup(t, Config{}, linuxA)
	eleven := make([]any, 0, 22)
	for i := range 11 {
		eleven = append(eleven, fmt.Sprintf("tag:k%d", i), []string{"v"})
	}
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"eleven_filters", filters(eleven...), "InvalidParameterValue.LimitExceeded"},
		{"six_values", filters("zone", []string{"a", "b", "c", "d", "e", "f"}), "InvalidFilterValue.LimitExceeded"},
		{"no_values", filters("zone", []string{}), "InvalidParameterValue"},
		{"unknown_name", filters("colour", []string{"x"}), "InvalidFilter"},
		{"bare_tag_prefix", filters("tag:", []string{"x"}), "InvalidFilter"},
		{"ids_and_filters", map[string]any{"InstanceIds": []string{linuxA.ID}, "Filters": []map[string]any{{"Name": "zone", "Values": []string{"x"}}}},
			"InvalidParameter.InvalidParameterCoexistInstanceIdsFilters"},
		{"limit_101", map[string]any{"Filters": []map[string]any{{"Name": "zone", "Values": []string{"x"}}}, "Limit": 101}, "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans := b.describeFiltered(t, tt.params)
			if ans.Response.Error == nil || ans.Response.Error.Code != tt.want {
				t.Errorf("answer %+v; want %s", ans.Response.Error, tt.want)
			}
		})
	}
}

// TestGenerateTags: generated instances carry a role and an env tag, with
// every combination present, spread over the three zones.
func TestGenerateTags(t *testing.T) {
	combos := map[string]int{}
	for _, in := range Generate(3000) {
		role, env := in.Tags["role"], in.Tags["env"]
		if !slices.Contains(GeneratedRoles, role) || !slices.Contains(GeneratedEnvs, env) || in.VpcID == "" || in.SubnetID == "" {
			t.Fatalf("%s: tags %v vpc %q subnet %q", in.ID, in.Tags, in.VpcID, in.SubnetID)
		}
		combos[role+"/"+env+"/"+in.Zone]++
	}
	if len(combos) != len(GeneratedRoles)*len(GeneratedEnvs)*len(generatedZones) {
		t.Errorf("combinations %v; want all %d", combos, len(GeneratedRoles)*len(GeneratedEnvs)*len(generatedZones))
	}
}

// TestLastResetExtras: the simulator records the UserData and automation
// agent switch of the reset it accepted.
func TestLastResetExtras(t *testing.T) {
	b := setup(t, Config{}, linuxA, linuxB)
	a := b.c.v3("ResetInstance", map[string]any{"InstanceId": linuxA.ID, "UserData": "I2Nsb3VkLWNvbmZpZwo=",
		"EnhancedService": map[string]any{"AutomationService": map[string]any{"Enabled": true}}})
	if a.code() != "" {
		t.Fatalf("reset: %s", a.code())
	}
	got, ok := b.srv.LastReset(linuxA.ID)
	if !ok || string(got.UserData) != "#cloud-config\n" || got.AutomationService == nil || !*got.AutomationService {
		t.Errorf("LastReset = %+v, %v", got, ok)
	}
	if got, ok := b.srv.LastReset(linuxB.ID); !ok || got.UserData != nil || got.AutomationService != nil {
		t.Errorf("never reset: %+v, %v", got, ok)
	}
	if a := b.c.v3("ResetInstance", map[string]any{"InstanceId": linuxB.ID, "UserData": "not base64!"}); a.code() != "InvalidParameterValue.InvalidUserDataFormat" {
		t.Errorf("bad UserData: %q", a.code())
	}
}
