// Package testfleet is the harness the end-to-end tests of worker, web,
// bench and chaos share: instance IDs, a simulated fleet served over HTTP,
// test plans, a ledger with its engine on a test Redis, in-process workers,
// awaiting a rollout's state, and the checks every such test ends with
// (each instance reset exactly once, the rollout succeeded).
//
// Only tests import it (deps_test.go holds that). It imports engine,
// ledger and planner, so those packages' own in-package tests cannot use
// it; external tests (package x_test) can.
package testfleet

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
)

// IDs returns n instance IDs, ins-00000001 upwards: readable in failures,
// and instance i is IDs(n)[i] for every n.
func IDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ins-%08x", i+1)
	}
	return out
}

// SeededIDs returns the IDs of cvmsim.GenerateSeed(n, seed): spread over
// the whole ID space, as a real fleet's are, and the same for a seed.
func SeededIDs(n int, seed int64) []string {
	ins := cvmsim.GenerateSeed(n, seed)
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}

// DefaultZones are the zones a Fleet spreads instances over by default.
var DefaultZones = []string{"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6"}

// Fleet shapes simulated instances: running Linux instances on Image,
// spread over Zones in turn.
type Fleet struct {
	// Image is every instance's current image; default cvmsim.ImageLinuxOld.
	Image string
	// Zones default to DefaultZones.
	Zones []string
}

// Instances returns the simulated instances for ids.
func (f Fleet) Instances(ids []string) []cvmsim.Instance {
	img := f.Image
	if img == "" {
		img = cvmsim.ImageLinuxOld
	}
	zones := f.Zones
	if len(zones) == 0 {
		zones = DefaultZones
	}
	out := make([]cvmsim.Instance, len(ids))
	for i, id := range ids {
		out[i] = cvmsim.Instance{ID: id, Zone: zones[i%len(zones)], ImageID: img, OS: cvmsim.OSLinux, State: cvmsim.StateRunning}
	}
	return out
}

// SimFleet returns the default Fleet's instances for ids: running Linux
// instances on cvmsim.ImageLinuxOld over three zones.
func SimFleet(ids []string) []cvmsim.Instance { return Fleet{}.Instances(ids) }

// Serve serves h over HTTP until the test ends and returns its URL.
func Serve(tb testing.TB, h http.Handler) string {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// StartSim serves a simulator holding SimFleet(ids) until the test ends,
// and returns it with its URL.
func StartSim(tb testing.TB, cfg cvmsim.Config, ids []string) (*cvmsim.Server, string) {
	tb.Helper()
	sim := cvmsim.New(cfg)
	sim.AddInstances(SimFleet(ids)...)
	return sim, Serve(tb, sim)
}

// SimCredentials returns the simulator's default credentials.
func SimCredentials() cvm.Credentials {
	return cvm.Credentials{SecretID: cvmsim.SecretIDDefault, SecretKey: cvm.Secret(cvmsim.SecretKeyDefault)}
}
