package health_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/health"
	"github.com/fleetreset/fleetreset/rollout"
)

func TestValidateCheck(t *testing.T) {
	lis := &rollout.Listener{LoadBalancerID: "lb-1", ListenerID: "lbl-1", Port: 80}
	tests := []struct {
		name      string
		check     rollout.Check
		wantField string // "" = valid
	}{
		{name: "http", check: rollout.Check{Kind: "http", URL: "http://{privateIp}:8080/healthz", Status: []int{200, 204}}},
		{name: "https_name", check: rollout.Check{Kind: "http", URL: "https://{name}.internal/"}},
		{name: "tcp", check: rollout.Check{Kind: "tcp", Address: "{privateIp}:22"}},
		{name: "clb", check: rollout.Check{Kind: "clb", Listener: lis}},
		{name: "tat", check: rollout.Check{Kind: "tat"}},
		{name: "unknown_kind", check: rollout.Check{Kind: "icmp"}, wantField: "kind"},
		{name: "http_no_url", check: rollout.Check{Kind: "http"}, wantField: "url"},
		{name: "http_bad_placeholder", check: rollout.Check{Kind: "http", URL: "http://{private_ip}/"}, wantField: "url"},
		{name: "http_ftp", check: rollout.Check{Kind: "http", URL: "ftp://{privateIp}/"}, wantField: "url"},
		{name: "http_no_host", check: rollout.Check{Kind: "http", URL: "http:///x"}, wantField: "url"},
		{name: "http_bad_status", check: rollout.Check{Kind: "http", URL: "http://{privateIp}/", Status: []int{2000}}, wantField: "status"},
		{name: "tcp_no_port", check: rollout.Check{Kind: "tcp", Address: "{privateIp}"}, wantField: "address"},
		{name: "tcp_empty_port", check: rollout.Check{Kind: "tcp", Address: "{privateIp}:"}, wantField: "address"},
		{name: "clb_no_listener", check: rollout.Check{Kind: "clb"}, wantField: "listener"},
		{name: "clb_bad_port", check: rollout.Check{Kind: "clb", Listener: &rollout.Listener{LoadBalancerID: "lb-1", ListenerID: "lbl-1"}}, wantField: "listener.port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := health.ValidateCheck(tt.check)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("ValidateCheck = %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, health.ErrInvalidCheck) || !strings.HasPrefix(err.Error(), "health: "+tt.wantField+": ") {
				t.Errorf("ValidateCheck = %v; want an ErrInvalidCheck naming %s", err, tt.wantField)
			}
		})
	}
}
