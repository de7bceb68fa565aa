package cvmsim

import (
	"net/url"
	"reflect"
	"testing"
)

// TestDecodeParamsFormEqualsJSON checks both encodings decode alike.
func TestDecodeParamsFormEqualsJSON(t *testing.T) {
	form := url.Values{
		"Action":                                 {"ResetInstance"}, // common, skipped
		"InstanceId":                             {"ins-aaaa0001"},
		"LoginSettings.KeyIds.0":                 {"skey-aaaaaaaa"},
		"LoginSettings.KeyIds.1":                 {"skey-bbbbbbbb"},
		"EnhancedService.MonitorService.Enabled": {"false"},
		"SystemDisk.DiskSize":                    {"60"},
	}
	body := `{"InstanceId":"ins-aaaa0001","LoginSettings":{"KeyIds":["skey-aaaaaaaa","skey-bbbbbbbb"]},
		"EnhancedService":{"MonitorService":{"Enabled":false}},"SystemDisk":{"DiskSize":60},"HostName":null}`
	var fromForm, fromJSON v3ResetParams
	if e := decodeParams(flattenForm(form), &fromForm); e != nil {
		t.Fatal(e)
	}
	leaves, e := flattenJSON([]byte(body))
	if e != nil {
		t.Fatal(e)
	}
	if e := decodeParams(leaves, &fromJSON); e != nil {
		t.Fatal(e)
	}
	if !reflect.DeepEqual(fromForm, fromJSON) {
		t.Fatalf("form %+v != JSON %+v", fromForm, fromJSON)
	}
	if *fromJSON.SystemDisk.DiskSize != 60 || *fromJSON.EnhancedService.MonitorService.Enabled || len(fromJSON.LoginSettings.KeyIds) != 2 || fromJSON.HostName != nil {
		t.Fatalf("decoded %+v", fromJSON)
	}
}

func TestDecodeParamsErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want errKind
	}{
		{"not_json", `{`, errInvalidParameter},
		{"not_object", `[1]`, errInvalidParameter},
		{"case_matters", `{"instanceId":"ins-aaaa0001"}`, errUnknownParameter},
		{"unknown_nested", `{"LoginSettings":{"Passwd":"x"}}`, errUnknownParameter},
		{"bool_as_string", `{"EnhancedService":{"SecurityService":{"Enabled":"true"}}}`, errInvalidParameter},
		{"number_as_string", `{"SystemDisk":{"DiskSize":"50"}}`, errInvalidParameter},
		{"fraction", `{"SystemDisk":{"DiskSize":50.5}}`, errInvalidParameter},
		{"string_as_number", `{"InstanceId":5}`, errInvalidParameter},
		{"object_as_string", `{"LoginSettings":"x"}`, errInvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaves, e := flattenJSON([]byte(tt.body))
			if e == nil {
				var p v3ResetParams
				e = decodeParams(leaves, &p)
			}
			if e == nil || e.kind != tt.want {
				t.Fatalf("decode %s = %v; want %s", tt.body, e, tt.want.v3)
			}
		})
	}
}
