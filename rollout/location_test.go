package rollout

import (
	"context"
	"slices"
	"testing"
)

func locationSpec() Spec {
	return Spec{Region: "ap-guangzhou", AccountName: "main",
		Accounts: map[string]AccountSource{"main": {Env: "MAIN"}, "sg": {Profile: "sg"}},
		Groups:   []Group{{Name: "gz"}, {Name: "sh", Region: "ap-shanghai"}, {Name: "sg", Region: "ap-singapore", Account: "sg"}}}
}

func TestLocationOf(t *testing.T) {
	s := locationSpec()
	gz, sh, sg := Location{"ap-guangzhou", "main"}, Location{"ap-shanghai", "main"}, Location{"ap-singapore", "sg"}
	for _, tc := range []struct {
		group int
		want  Location
	}{{0, gz}, {1, sh}, {2, sg}, {-1, gz}, {9, gz}} {
		if got := s.LocationOf(tc.group); got != tc.want {
			t.Errorf("LocationOf(%d) = %v, want %v", tc.group, got, tc.want)
		}
	}
	if got := s.Locations(); !slices.Equal(got, []Location{gz, sh, sg}) || !s.MultiLocation() {
		t.Errorf("Locations = %v", got)
	}
	// At keeps every group's location, however often applied.
	at := s.At(sg).At(sh)
	if at.Region != "ap-shanghai" || at.AccountName != "main" {
		t.Errorf("At: region %s account %s", at.Region, at.AccountName)
	}
	for i := range s.Groups {
		if got, want := at.At(sg).LocationOf(i), s.LocationOf(i); got != want {
			t.Errorf("after At, LocationOf(%d) = %v, want %v", i, got, want)
		}
	}
	if src, ok := s.At(sg).AccountSource(); !ok || src.Profile != "sg" {
		t.Errorf("AccountSource at sg = %+v, %v", src, ok)
	}
	if _, ok := (Spec{}).AccountSource(); ok {
		t.Error("the default account has a source")
	}
	if (Spec{Region: "ap-guangzhou", Groups: []Group{{}, {Region: "ap-guangzhou"}}}).MultiLocation() {
		t.Error("a group naming the default region is another location")
	}
}

func TestDescribeByLocation(t *testing.T) {
	s := locationSpec()
	targets := []Target{{InstanceID: "a", Group: 0}, {InstanceID: "b", Group: 1}, {InstanceID: "c", Group: 0}, {InstanceID: "d", Group: 2}}
	calls := map[Location][]string{}
	d := s.DescribeByLocation(targets, func(loc Location) DescribeFunc {
		return func(_ context.Context, ids []string) (map[string]Observed, error) {
			calls[loc] = append(calls[loc], ids...)
			out := map[string]Observed{}
			for _, id := range ids {
				out[id] = Observed{Found: true, ImageID: loc.Region}
			}
			return out, nil
		}
	})
	got, err := d(context.Background(), []string{"a", "b", "c", "d", "unknown"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "c", "unknown"}; !slices.Equal(calls[Location{"ap-guangzhou", "main"}], want) {
		t.Errorf("guangzhou asked for %v, want %v", calls[Location{"ap-guangzhou", "main"}], want)
	}
	if len(calls) != 3 || got["d"].ImageID != "ap-singapore" || got["b"].ImageID != "ap-shanghai" {
		t.Errorf("calls %v, answers %v", calls, got)
	}
}
