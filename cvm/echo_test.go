package cvm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
)

// TestEchoingUpstream runs the real client of each generation against a
// simulator that quotes the request's password in its error messages, raw,
// JSON- and HTML-escaped, percent-encoded and cut in half (the careless
// upstream of issue 16). Whatever the error, its Error(), %+v, %#v and JSON
// encoding hold no piece of 4 or more bytes of the password in any form;
// the code and RequestId survive.
func TestEchoingUpstream(t *testing.T) {
	const (
		known   = "ins-echo0001"
		unknown = "ins-echo9999"
	)
	cases := []struct {
		name     string
		password cvm.Secret
		instance string
		faults   cvmsim.Faults
		wantCode map[cvm.Generation]string
	}{
		{
			// Fails the password rules (< > " are not allowed), but the
			// unknown instance is checked first: a code about something else.
			name: "not_found", password: `Ab&'c<d>"e%f+1`, instance: unknown,
			wantCode: map[cvm.Generation]string{cvm.V2: "InvalidInstanceId.NotFound", cvm.V3: "InvalidInstanceId.NotFound"},
		},
		{
			name: "password_rules", password: `Ab&'c<d>"e%f+1`, instance: known,
			wantCode: map[cvm.Generation]string{cvm.V2: "InvalidParameter.PasswordNotConformSpecs", cvm.V3: "InvalidParameterValue.InvalidPassword"},
		},
		{
			// A valid password with a percent escape and an entity in it.
			name: "system_busy", password: `P&amp;%2fw+1'x`, instance: known, faults: cvmsim.Faults{SystemBusyFirst: 1},
			wantCode: map[cvm.Generation]string{cvm.V2: "OperationFail.SystemBusy", cvm.V3: cvmsim.SystemBusyCodeV3Default},
		},
		{
			name: "bad_gateway", password: `Ab&'c%f+1=x`, instance: known, faults: cvmsim.Faults{ServerErrorRate: 1},
			wantCode: map[cvm.Generation]string{cvm.V2: "HTTPStatus.502", cvm.V3: "HTTPStatus.502"},
		},
	}
	for _, gen := range []cvm.Generation{cvm.V2, cvm.V3} {
		for _, tc := range cases {
			t.Run(string(gen)+"/"+tc.name, func(t *testing.T) {
				tc.faults.EchoParams = true
				tc.faults.ResetRateLimit, tc.faults.DescribeRateLimit = -1, -1
				sim := cvmsim.New(cvmsim.Config{Faults: tc.faults})
				sim.AddInstances(cvmsim.Instance{ID: known, Zone: "ap-guangzhou-3", ImageID: cvmsim.ImageLinuxOld, OS: cvmsim.OSLinux, State: cvmsim.StateRunning})
				srv := httptest.NewServer(sim)
				defer srv.Close()
				api, err := cvm.New(cvm.Config{Generation: gen, Endpoint: srv.URL, Region: cvmsim.RegionDefault,
					Credentials: cvm.Credentials{SecretID: cvmsim.SecretIDDefault, SecretKey: cvmsim.SecretKeyDefault}})
				if err != nil {
					t.Fatal(err)
				}
				_, err = api.ResetInstance(context.Background(), cvm.ResetRequest{InstanceID: tc.instance, Password: tc.password})
				ae, ok := errors.AsType[*cvm.APIError](err)
				if !ok {
					t.Fatalf("ResetInstance = %T %v; want *cvm.APIError", err, err)
				}
				if want := tc.wantCode[gen]; ae.Code != want {
					t.Errorf("Code = %q; want %q", ae.Code, want)
				}
				if ae.HTTPStatus == 200 && ae.RequestID == "" && gen == cvm.V3 {
					t.Errorf("RequestID lost: %#v", ae)
				}
				j, jerr := json.Marshal(err)
				if jerr != nil {
					t.Fatal(jerr)
				}
				for _, text := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), string(j)} {
					if leak := cvm.ExposedFragment(text, tc.password.Reveal()); leak != "" {
						t.Errorf("error text exposes the password, %s:\n%s", leak, text)
					}
				}
			})
		}
	}
}
