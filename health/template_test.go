package health_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/health"
)

var facts = health.Facts{InstanceID: "ins-1", PrivateIP: "10.0.0.7", PublicIP: "203.0.113.7", Zone: "ap-guangzhou-3", Name: "web-1"}

func TestExpand(t *testing.T) {
	tests := []struct {
		name     string
		template string
		facts    health.Facts
		want     string
		wantErr  error
		wantName string // the placeholder the error must name
	}{
		{name: "all", template: "{instanceId} {privateIp} {publicIp} {zone} {name}", facts: facts, want: "ins-1 10.0.0.7 203.0.113.7 ap-guangzhou-3 web-1"},
		{name: "url", template: "http://{privateIp}:8080/healthz?id={instanceId}", facts: facts, want: "http://10.0.0.7:8080/healthz?id=ins-1"},
		{name: "repeated", template: "{name}-{name}", facts: facts, want: "web-1-web-1"},
		{name: "no_placeholders", template: "10.0.0.1:22", facts: facts, want: "10.0.0.1:22"},
		{name: "stray_close_brace", template: "a}b", facts: facts, want: "a}b"},
		{name: "empty", template: "", facts: facts, want: ""},
		{name: "unknown", template: "http://{privateIP}/", facts: facts, wantErr: health.ErrUnknownPlaceholder, wantName: "{privateIP}"}, // case matters
		{name: "empty_name", template: "x{}y", facts: facts, wantErr: health.ErrUnknownPlaceholder, wantName: "{}"},
		{name: "empty_fact", template: "{publicIp}:22", facts: health.Facts{InstanceID: "ins-1"}, wantErr: health.ErrEmptyFact, wantName: "{publicIp}"},
		{name: "unclosed", template: "http://{privateIp", facts: facts, wantErr: health.ErrUnclosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := health.Expand(tt.template, tt.facts)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Expand(%q) error = %v; want %v", tt.template, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantName) {
				t.Errorf("Expand(%q) error = %q; want it to name %s", tt.template, err, tt.wantName)
			}
			if got != tt.want {
				t.Errorf("Expand(%q) = %q; want %q", tt.template, got, tt.want)
			}
		})
	}
}

func TestValidateTemplate(t *testing.T) {
	tests := []struct {
		template string
		want     error
	}{
		{"http://{publicIp}:80/", nil}, // no facts needed: an empty fact is not a plan error
		{"{instanceId}.{zone}.{name}", nil},
		{"http://{ip}/", health.ErrUnknownPlaceholder},
		{"{zone", health.ErrUnclosed},
	}
	for _, tt := range tests {
		if err := health.ValidateTemplate(tt.template); !errors.Is(err, tt.want) {
			t.Errorf("ValidateTemplate(%q) = %v; want %v", tt.template, err, tt.want)
		}
	}
}

func TestTemplateErrorsHideTemplate(t *testing.T) {
	_, err := health.Expand("http://admin:s3cret@{nope}/", facts)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Expand error = %v; want an error without the template's password", err)
	}
}
