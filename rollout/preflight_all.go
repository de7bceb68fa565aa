package rollout

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// DescribeFunc returns what the cloud shows of up to 100 instances (absent
// ones are not in the map). Callers adapt an API client to it, so that the
// packages deciding on rollouts never depend on one.
type DescribeFunc func(ctx context.Context, ids []string) (map[string]Observed, error)

// PreflightReport is the pre-flight of a whole plan, as data: the preview
// prints it and apply acts on it.
type PreflightReport struct {
	// Skipped and Refused map instance IDs to the reason.
	Skipped map[string]string
	Refused map[string]string
	// Awaited maps instances with an operation running (a reinstall from
	// an earlier rollout, say) to the reason: the workers wait for it and
	// judge it, and reset only what it did not do.
	Awaited map[string]string
	// Images maps every found instance to its current image.
	Images map[string]string
	// Zones maps found instances to their zone.
	Zones map[string]string
	// DescribeCalls counts the API calls made.
	DescribeCalls int
}

// RefusedSummary lists up to n refused instances, sorted.
func (p PreflightReport) RefusedSummary(n int) string {
	ids := make([]string, 0, len(p.Refused))
	for id := range p.Refused {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var parts []string
	for i, id := range ids {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(ids)-n))
			break
		}
		parts = append(parts, id+": "+p.Refused[id])
	}
	return fmt.Sprintf("%d instance(s) cannot be reset: %s", len(ids), strings.Join(parts, "; "))
}

// PreflightAll checks every target with describe, 100 per call, and
// decides proceed, skip, await or refuse for each (Preflight).
func PreflightAll(ctx context.Context, spec Spec, targets []Target, describe DescribeFunc) (PreflightReport, error) {
	return PreflightAllAt(ctx, spec, targets, func(Location) DescribeFunc { return describe })
}

// PreflightAllAt is PreflightAll with a describe per location: each
// request holds the targets of one location (their group's region and
// account).
func PreflightAllAt(ctx context.Context, spec Spec, targets []Target, at func(Location) DescribeFunc) (PreflightReport, error) {
	res := PreflightReport{Skipped: map[string]string{}, Refused: map[string]string{}, Awaited: map[string]string{}, Images: map[string]string{}, Zones: map[string]string{}}
	var order []Location
	byLoc := map[Location][]Target{}
	for _, t := range targets {
		l := spec.LocationOf(t.Group)
		if _, ok := byLoc[l]; !ok {
			order = append(order, l)
		}
		byLoc[l] = append(byLoc[l], t)
	}
	for _, loc := range order {
		if err := preflightLocation(ctx, spec, byLoc[loc], at(loc), &res); err != nil {
			if len(order) > 1 {
				err = fmt.Errorf("%s: %w", loc, err)
			}
			return res, err
		}
	}
	return res, nil
}

// preflightLocation pre-flights the targets of one location, 100 per call.
func preflightLocation(ctx context.Context, spec Spec, targets []Target, describe DescribeFunc, res *PreflightReport) error {
	const batch = 100
	for start := 0; start < len(targets); start += batch {
		chunk := targets[start:min(start+batch, len(targets))]
		ids := make([]string, len(chunk))
		for i, t := range chunk {
			ids[i] = t.InstanceID
		}
		obs, err := describe(ctx, ids)
		res.DescribeCalls++
		if err != nil {
			return fmt.Errorf("pre-flight: %w", err)
		}
		for _, t := range chunk {
			o := obs[t.InstanceID]
			if o.Found {
				res.Images[t.InstanceID] = o.ImageID
				res.Zones[t.InstanceID] = o.Zone
			}
			switch v, why := Preflight(spec.Groups[t.Group].ImageID, o, spec.ResetMatching); v {
			case Skip:
				res.Skipped[t.InstanceID] = why
			case Refuse:
				res.Refused[t.InstanceID] = why
			case Await:
				res.Awaited[t.InstanceID] = why
			}
		}
	}
	return nil
}
