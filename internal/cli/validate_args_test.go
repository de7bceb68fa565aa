package cli

import (
	"strings"
	"testing"
)

func TestValidateArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for valid
	}{
		{"worker", []string{"worker", "--endpoint", "http://sim:8080", "--concurrency", "10", "--metrics-addr", "0.0.0.0:9464"}, ""},
		{"workerEqualsForm", []string{"worker", "-concurrency=10", "-v"}, ""},
		{"ui", []string{"ui", "--listen", "0.0.0.0:8090", "--allow-actions", "--basic-auth-env", "UI_AUTH"}, ""},
		{"sim", []string{"sim", "--listen", "0.0.0.0:8080", "--plan", "plans/demo.yaml", "--reset-duration", "5s"}, ""},
		{"apply", []string{"apply", "--endpoint", "http://sim:8080", "plans/demo.yaml"}, ""},
		{"validateMany", []string{"validate", "a.yaml", "b.yaml"}, ""},
		{"statusOptional", []string{"status"}, ""},
		{"statusOne", []string{"status", "--watch", "demo"}, ""},
		{"unknownCommand", []string{"serve"}, "not a fleetreset command"},
		{"unknownFlag", []string{"worker", "--metrics", ":9464"}, "flag provided but not defined: -metrics"},
		{"badDuration", []string{"worker", "--reconcile-grace", "soon"}, "invalid value"},
		{"badInt", []string{"worker", "--concurrency", "ten"}, "invalid value"},
		{"missingPlan", []string{"apply", "--endpoint", "http://sim:8080"}, "0 argument(s)"},
		{"extraArg", []string{"worker", "extra"}, "1 argument(s)"},
		{"validateNone", []string{"validate"}, "0 argument(s)"},
		{"statusTwo", []string{"status", "a", "b"}, "2 argument(s)"},
		{"missingValue", []string{"ui", "--listen"}, "flag needs an argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateArgs(tt.args)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidateArgs(%q) = %v; want nil", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ValidateArgs(%q) = %v; want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

// TestValidateArgsKnowsEveryCommand makes sure every command answers -h
// without side effects and with a usage line ValidateArgs understands.
func TestValidateArgsKnowsEveryCommand(t *testing.T) {
	for _, c := range commands() {
		spec, err := commandSpec(c.name)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(spec.flags) == 0 {
			t.Errorf("%s: no flags read from -h", c.name)
		}
		if c.args != spec.usage {
			t.Errorf("%s: usage %q in -h, %q in the command table", c.name, spec.usage, c.args)
		}
	}
}
