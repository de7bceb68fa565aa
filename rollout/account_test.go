package rollout

import "testing"

func TestAccountServes(t *testing.T) {
	ro := Spec{API: "v3", Endpoint: "http://sim", Region: "ap-guangzhou", Identity: "role:deployer"}.Account()
	tests := []struct {
		name   string
		worker Account
		want   string
	}{
		{"unrestricted worker", Account{}, ""},
		{"same everything", Account{API: "v3", Endpoint: "http://sim", Identity: "role:deployer"}, ""},
		{"other api", Account{API: "v2"}, "api"},
		{"other endpoint", Account{Endpoint: "http://other"}, "endpoint"},
		{"other identity", Account{Identity: "AKIDother"}, "identity"},
		{"worker without credentials identity", Account{API: "v3"}, ""},
	}
	for _, tt := range tests {
		if got := ro.Serves(tt.worker); got != tt.want {
			t.Errorf("%s: Serves = %q; want %q", tt.name, got, tt.want)
		}
	}
	if got := (Account{}).Serves(Account{Identity: "AKIDx"}); got != "" {
		t.Errorf("a rollout applied without an identity is served by any: %q", got)
	}
	if got := ro.LimiterIdentity("AKIDmine"); got != "role:deployer" {
		t.Errorf("LimiterIdentity = %q; want the stored one", got)
	}
	if got := (Account{}).LimiterIdentity("AKIDmine"); got != "AKIDmine" {
		t.Errorf("LimiterIdentity without a stored one = %q; want the worker's", got)
	}
}
