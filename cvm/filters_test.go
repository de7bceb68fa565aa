package cvm

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestV3DescribeFilteredRequest: filters, Offset and Limit go out as the
// API documents them, and tags come back as a map.
func TestV3DescribeFilteredRequest(t *testing.T) {
	rt := &recordingTransport{respond: func(*http.Request, []byte) (*http.Response, error) {
		return jsonResponse(200, `{"Response":{"TotalCount":205,"InstanceSet":[
			{"InstanceId":"ins-1","Placement":{"Zone":"ap-guangzhou-3"},"ImageId":"img-old","InstanceState":"RUNNING",
			 "Tags":[{"Key":"role","Value":"web"},{"Key":"env","Value":"prod"}]},
			{"InstanceId":"ins-2","Placement":{"Zone":"ap-guangzhou-4"},"ImageId":"img-old","InstanceState":"STOPPED","Tags":[]}],
			"RequestId":"req-1"}}`), nil
	}}
	api := newTestAPI(t, V3, "", func(c *Config) { c.Transport = rt })
	got, total, err := api.(Lister).DescribeInstancesFiltered(context.Background(),
		[]Filter{{Name: "tag:role", Values: []string{"web"}}, {Name: "zone", Values: []string{"ap-guangzhou-3", "ap-guangzhou-4"}}}, 200, 100)
	if err != nil {
		t.Fatal(err)
	}
	if total != 205 {
		t.Errorf("total = %d; want 205", total)
	}
	want := []Instance{
		{InstanceID: "ins-1", Zone: "ap-guangzhou-3", ImageID: "img-old", State: "RUNNING", Tags: map[string]string{"role": "web", "env": "prod"}},
		{InstanceID: "ins-2", Zone: "ap-guangzhou-4", ImageID: "img-old", State: "STOPPED"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("instances (-want +got):\n%s", diff)
	}
	_, body := rt.last(t)
	wantBody := `{"Filters":[{"Name":"tag:role","Values":["web"]},{"Name":"zone","Values":["ap-guangzhou-3","ap-guangzhou-4"]}],"Offset":200,"Limit":100}`
	if diff := cmp.Diff(canonicalJSON(t, wantBody), canonicalJSON(t, string(body))); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if strings.Contains(string(body), "InstanceIds") {
		t.Errorf("filters sent with InstanceIds: %s", body)
	}
}

// TestDescribeFilteredRefused: what the API would refuse, and v2, never
// go out.
func TestDescribeFilteredRefused(t *testing.T) {
	six := []string{"a", "b", "c", "d", "e", "f"}
	eleven := make([]Filter, MaxFilters+1)
	for i := range eleven {
		eleven[i] = Filter{Name: "tag-key", Values: []string{"k"}}
	}
	ok := []Filter{{Name: "zone", Values: []string{"ap-guangzhou-3"}}}
	tests := []struct {
		name          string
		gen           Generation
		filters       []Filter
		offset, limit int
		want          string
	}{
		{"no_filters", V3, nil, 0, 100, "every instance"},
		{"eleven_filters", V3, eleven, 0, 100, "11 filters"},
		{"six_values", V3, []Filter{{Name: "zone", Values: six}}, 0, 100, "6 values"},
		{"no_values", V3, []Filter{{Name: "zone"}}, 0, 100, "0 values"},
		{"no_name", V3, []Filter{{Values: []string{"x"}}}, 0, 100, "no name"},
		{"limit_101", V3, ok, 0, 101, "Limit 101"},
		{"limit_0", V3, ok, 0, 0, "Limit 0"},
		{"negative_offset", V3, ok, -1, 100, "Offset -1"},
		{"v2", V2, ok, 0, 100, "not supported in v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &recordingTransport{}
			api := newTestAPI(t, tt.gen, "", func(c *Config) { c.Transport = rt })
			_, _, err := api.(Lister).DescribeInstancesFiltered(context.Background(), tt.filters, tt.offset, tt.limit)
			if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v; want ErrInvalidRequest saying %q", err, tt.want)
			}
			if len(rt.reqs) != 0 {
				t.Errorf("%d requests sent; want none", len(rt.reqs))
			}
		})
	}
}

// TestV3ResetUserDataAndAutomation: UserData goes out base64-encoded and
// AutomationAgent as EnhancedService.AutomationService; v2 refuses
// UserData and too much of it is refused before sending.
func TestV3ResetUserDataAndAutomation(t *testing.T) {
	rt := &recordingTransport{}
	api := newTestAPI(t, V3, "", func(c *Config) { c.Transport = rt })
	script := []byte("#cloud-config\nruncmd: [echo hi]\n")
	if _, err := api.ResetInstance(context.Background(), ResetRequest{InstanceID: "ins-1", KeepImageLogin: true, UserData: script, AutomationAgent: true}); err != nil {
		t.Fatal(err)
	}
	_, body := rt.last(t)
	want := `{"InstanceId":"ins-1","LoginSettings":{"KeepImageLogin":"TRUE"},"EnhancedService":{"AutomationService":{"Enabled":true}},"UserData":"` +
		base64.StdEncoding.EncodeToString(script) + `"}`
	if diff := cmp.Diff(canonicalJSON(t, want), canonicalJSON(t, string(body))); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}

	// 12 KiB is exactly 16 KiB in base64; one byte more is too much.
	for _, n := range []int{12 << 10, 12<<10 + 1} {
		rt := &recordingTransport{}
		api := newTestAPI(t, V3, "", func(c *Config) { c.Transport = rt })
		_, err := api.ResetInstance(context.Background(), ResetRequest{InstanceID: "ins-1", UserData: make([]byte, n)})
		if fits := n <= 12<<10; fits != (err == nil) {
			t.Errorf("UserData of %d bytes: err = %v", n, err)
		}
	}
	rt2 := &recordingTransport{}
	v2 := newTestAPI(t, V2, "", func(c *Config) { c.Transport = rt2 })
	if _, err := v2.ResetInstance(context.Background(), ResetRequest{InstanceID: "ins-1", UserData: script}); !errors.Is(err, ErrInvalidRequest) || len(rt2.reqs) != 0 {
		t.Errorf("v2 with UserData: err = %v, %d requests; want ErrInvalidRequest and none", err, len(rt2.reqs))
	}
}
