package web

import (
	"testing"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// TestFailedInstanceShowsNoNewImage: a failed reset shows the image the
// cloud showed as seen, not as new ("img-old → img-old", issue 15).
func TestFailedInstanceShowsNoNewImage(t *testing.T) {
	r := &ledger.Rollout{Spec: rollout.Spec{Groups: []rollout.Group{{Name: "g", ImageID: "img-new"}}}}
	for _, tc := range []struct {
		state          ledger.InstanceState
		wantNew, wantS string
	}{
		{ledger.Succeeded, "img-new", ""},
		{ledger.Skipped, "img-new", ""},
		{ledger.Failed, "", "img-old"},
		{ledger.Ambiguous, "", "img-old"},
	} {
		img := "img-new"
		if tc.wantS != "" {
			img = "img-old"
		}
		v := instanceView(r, &ledger.Instance{ID: "ins-1", State: tc.state, OldImage: "img-old", NewImage: img})
		if v.NewImage != tc.wantNew || v.SeenImage != tc.wantS {
			t.Errorf("%s: new %q seen %q; want new %q seen %q", tc.state, v.NewImage, v.SeenImage, tc.wantNew, tc.wantS)
		}
	}
}
