//go:build live

package cvm_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
)

// TestLive runs the conformance suite against the real Tencent Cloud API.
// It RESETS FLEETRESET_LIVE_INSTANCE (its system disk is wiped; without
// FLEETRESET_LIVE_PASSWORD the cloud sends a random password to the
// message center). See the package doc for the command. Missing variables
// fail the test: a live run that silently did nothing would look green.
//
//	TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY  required
//	TENCENTCLOUD_SESSION_TOKEN                       optional STS token
//	FLEETRESET_LIVE_REGION                           required, e.g. ap-guangzhou
//	FLEETRESET_LIVE_INSTANCE                         required, a disposable ins-xxxxxxxx
//	FLEETRESET_LIVE_IMAGE                            optional target image
//	FLEETRESET_LIVE_PASSWORD                         optional new password
//	FLEETRESET_LIVE_GENERATIONS                      optional "v3" (default), "v2" or "v2,v3"
func TestLive(t *testing.T) {
	creds, err := cvm.CredentialsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	region, instance := os.Getenv("FLEETRESET_LIVE_REGION"), os.Getenv("FLEETRESET_LIVE_INSTANCE")
	if region == "" || instance == "" {
		t.Fatal("set FLEETRESET_LIVE_REGION and FLEETRESET_LIVE_INSTANCE (an instance the test may reinstall)")
	}
	gens := strings.Split(cmpOr(os.Getenv("FLEETRESET_LIVE_GENERATIONS"), "v3"), ",")
	for _, g := range gens {
		gen := cvm.Generation(strings.TrimSpace(g))
		t.Run(string(gen), func(t *testing.T) {
			runConformance(t, func(t *testing.T) *target {
				cfg := cvm.Config{Generation: gen, Region: region, Credentials: creds}
				api, err := cvm.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				return &target{
					Config: cfg, API: api, InstanceID: instance,
					Image:    os.Getenv("FLEETRESET_LIVE_IMAGE"),
					Password: cvm.Secret(os.Getenv("FLEETRESET_LIVE_PASSWORD")),
					// LatestOperationState may lag the call by seconds
					// (Terraform waits 10 s); a reinstall takes minutes.
					Poll: 5 * time.Second, Timeout: 20 * time.Minute,
				}
			}, false)
		})
	}
}
