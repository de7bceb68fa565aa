package rollout

import (
	"context"
	"fmt"
	"maps"
)

// AccountSource names where a worker finds an account's credentials; never
// the credentials themselves. Exactly one field is set.
type AccountSource struct {
	// Env is a variable prefix: PREFIX_SECRET_ID, PREFIX_SECRET_KEY and,
	// optionally, PREFIX_TOKEN.
	Env string `json:"env,omitempty"`
	// Profile is a section of the SDK's credentials file.
	Profile string `json:"profile,omitempty"`
	// Role is a CAM role bound to the worker's instance (metadata service).
	Role string `json:"role,omitempty"`
}

// Location is where a group's calls go: a region and an account name from
// Spec.Accounts ("" is the process's default credentials).
type Location struct {
	Region  string `json:"region"`
	Account string `json:"account,omitempty"`
}

// String formats a location for messages and keys: "region" or
// "region/account".
func (l Location) String() string {
	if l.Account == "" {
		return l.Region
	}
	return l.Region + "/" + l.Account
}

// LocationOf returns where the calls for group go: the group's region and
// account, each defaulting to the spec's.
func (s Spec) LocationOf(group int) Location {
	loc := Location{Region: s.Region, Account: s.AccountName}
	if group >= 0 && group < len(s.Groups) {
		g := s.Groups[group]
		if g.Region != "" {
			loc.Region = g.Region
		}
		if g.Account != "" {
			loc.Account = g.Account
		}
	}
	return loc
}

// Locations returns the spec's distinct locations in group order.
func (s Spec) Locations() []Location {
	var out []Location
	seen := map[Location]bool{}
	for i := range s.Groups {
		if l := s.LocationOf(i); !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		out = append(out, s.LocationOf(-1))
	}
	return out
}

// CountedRegions returns the regions whose outcomes the ledger counts apart
// (for RegionBudget and per-region progress), in group order: the spec's
// distinct regions when it has a RegionBudget or spans more than one
// region, else nil.
func (s Spec) CountedRegions() []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range s.Locations() {
		if !seen[l.Region] {
			seen[l.Region] = true
			out = append(out, l.Region)
		}
	}
	if s.RegionBudget == nil && len(out) < 2 {
		return nil
	}
	return out
}

// UsesDefaultAccount reports whether any group's calls go out under the
// process's default credentials (a location without an account).
func (s Spec) UsesDefaultAccount() bool {
	for _, l := range s.Locations() {
		if l.Account == "" {
			return true
		}
	}
	return false
}

// MultiLocation reports whether the spec's groups span more than one
// location.
func (s Spec) MultiLocation() bool { return len(s.Locations()) > 1 }

// At returns the spec as seen by the calls of one location: Region and
// AccountName are the location's. Code that builds clients and rate-limit
// keys from a spec uses it unchanged. The groups keep their own locations
// (LocationOf answers as on s), so At of an At is safe.
func (s Spec) At(loc Location) Spec {
	if s.Region == loc.Region && s.AccountName == loc.Account {
		return s
	}
	gs := make([]Group, len(s.Groups))
	for i, g := range s.Groups {
		l := s.LocationOf(i)
		g.Region, g.Account = l.Region, l.Account
		gs[i] = g
	}
	s.Groups = gs
	s.Region, s.AccountName = loc.Region, loc.Account
	return s
}

// AccountSource returns the credential source of the spec's account
// (AccountName), and false for the default credentials.
func (s Spec) AccountSource() (AccountSource, bool) {
	if s.AccountName == "" {
		return AccountSource{}, false
	}
	src, ok := s.Accounts[s.AccountName]
	return src, ok
}

// ByLocation splits ids by the location of their group (groupOf), keeping
// their order within each location; locations come in first-seen order.
func (s Spec) ByLocation(ids []string, groupOf func(id string) int) ([]Location, map[Location][]string) {
	var order []Location
	out := map[Location][]string{}
	for _, id := range ids {
		l := s.LocationOf(groupOf(id))
		if _, ok := out[l]; !ok {
			order = append(order, l)
		}
		out[l] = append(out[l], id)
	}
	return order, out
}

// DescribeByLocation returns a DescribeFunc that sends each location's
// share of its IDs (targets say their groups) to that location's
// describe, for callers that take one DescribeFunc. An ID not among
// targets goes to the spec's default location.
func (s Spec) DescribeByLocation(targets []Target, at func(Location) DescribeFunc) DescribeFunc {
	group := make(map[string]int, len(targets))
	for _, t := range targets {
		group[t.InstanceID] = t.Group
	}
	return func(ctx context.Context, ids []string) (map[string]Observed, error) {
		order, by := s.ByLocation(ids, func(id string) int {
			if g, ok := group[id]; ok {
				return g
			}
			return -1
		})
		out := make(map[string]Observed, len(ids))
		for _, loc := range order {
			found, err := at(loc)(ctx, by[loc])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", loc, err)
			}
			maps.Copy(out, found)
		}
		return out, nil
	}
}
