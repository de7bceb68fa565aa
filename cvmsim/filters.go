package cvmsim

import (
	"strconv"
	"strings"
)

// DescribeInstances filters (API 3.0 Filters.N): an instance matches a
// filter when the attribute the filter names equals one of its values, and
// a request when it matches every filter. Names and semantics follow the
// DescribeInstances documentation (cloud.tencent.com/document/api/213/15728):
// instance-name matches names that contain the value (the documented fuzzy
// match), tag:KEY the value of tag KEY, tag-key any tag with that key and
// tag-value any tag with that value; the rest compare exactly.

// Filter errors the documentation lists for DescribeInstances.
var (
	// errFilterValues answers a filter with more than 5 values.
	errFilterValues = errKind{"InvalidFilterValue.LimitExceeded", 4000, "InvalidParameter"}
	// errCoexistIDsFilters answers InstanceIds and Filters together.
	errCoexistIDsFilters = errKind{"InvalidParameter.InvalidParameterCoexistInstanceIdsFilters", 4000, "InvalidParameter"}
)

// Limits of one DescribeInstances request.
const (
	maxFilters      = 10
	maxFilterValues = 5
	maxLimit        = 100
)

// ChargeTypeDefault is the InstanceChargeType of an instance added
// without one: pay as you go.
const ChargeTypeDefault = "POSTPAID_BY_HOUR"

// exactFilters compare one attribute with the filter's values.
var exactFilters = map[string]func(*instance) string{
	"instance-id":          func(in *instance) string { return in.ID },
	"zone":                 func(in *instance) string { return in.Zone },
	"image-id":             func(in *instance) string { return in.ImageID },
	"instance-state":       func(in *instance) string { return in.State },
	"vpc-id":               func(in *instance) string { return in.VpcID },
	"subnet-id":            func(in *instance) string { return in.SubnetID },
	"project-id":           func(in *instance) string { return strconv.Itoa(in.ProjectID) },
	"instance-charge-type": func(in *instance) string { return in.chargeType() },
}

// filterNames lists the names filterFunc knows, for error messages.
func filterNames() []string {
	return append(sortedKeys(exactFilters), "instance-name", "tag-key", "tag-value", "tag:KEY")
}

// filterFunc returns the test of one filter name against one value, or
// false when the simulator does not know the name.
func filterFunc(name string) (func(in *instance, value string) bool, bool) {
	if get, ok := exactFilters[name]; ok {
		return func(in *instance, v string) bool { return get(in) == v }, true
	}
	switch {
	case name == "instance-name":
		return func(in *instance, v string) bool { return strings.Contains(in.name(), v) }, true
	case name == "tag-key":
		return func(in *instance, v string) bool { _, ok := in.Tags[v]; return ok }, true
	case name == "tag-value":
		return func(in *instance, v string) bool {
			for _, tv := range in.Tags {
				if tv == v {
					return true
				}
			}
			return false
		}, true
	case strings.HasPrefix(name, "tag:") && len(name) > len("tag:"):
		key := name[len("tag:"):]
		return func(in *instance, v string) bool { tv, ok := in.Tags[key]; return ok && tv == v }, true
	}
	return nil, false
}

// instanceFilter is one parsed filter of a request.
type instanceFilter struct {
	test   func(*instance, string) bool
	values []string
}

// matches reports whether in matches one of f's values.
func (f instanceFilter) matches(in *instance) bool {
	for _, v := range f.values {
		if f.test(in, v) {
			return true
		}
	}
	return false
}

// parseFilters checks a request's Filters as the API does and returns them.
func parseFilters(fs []v3Filter) ([]instanceFilter, *apiErr) {
	if len(fs) > maxFilters {
		return nil, newErr(errLimitExceeded, "at most %d Filters per request, got %d", maxFilters, len(fs))
	}
	out := make([]instanceFilter, 0, len(fs))
	for i, f := range fs {
		if f.Name == nil {
			return nil, newErr(errInvalidFilter, "Filters.%d.Name is missing", i)
		}
		test, ok := filterFunc(*f.Name)
		if !ok {
			return nil, newErr(errInvalidFilter, "Filters.%d.Name %q is not one of %s", i, *f.Name, strings.Join(filterNames(), ", "))
		}
		switch {
		case len(f.Values) == 0:
			return nil, newErr(errInvalidParamValue, "Filters.%d.Values is empty", i)
		case len(f.Values) > maxFilterValues:
			return nil, newErr(errFilterValues, "Filters.%d.Values has %d values, at most %d", i, len(f.Values), maxFilterValues)
		}
		out = append(out, instanceFilter{test: test, values: f.Values})
	}
	return out, nil
}

// chargeType is the InstanceChargeType reported.
func (in *instance) chargeType() string {
	if in.ChargeType != "" {
		return in.ChargeType
	}
	return ChargeTypeDefault
}

// v3Tag is one entry of an API 3.0 Instance's Tags.
type v3Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// v3VPC is an API 3.0 Instance's VirtualPrivateCloud.
type v3VPC struct {
	VpcID    string `json:"VpcId"`
	SubnetID string `json:"SubnetId"`
}

// v3Tags returns in's tags sorted by key, [] when it has none (the API
// sends an empty list, not null).
func (in *instance) v3Tags() []v3Tag {
	out := []v3Tag{}
	for _, k := range sortedKeys(in.Tags) {
		out = append(out, v3Tag{Key: k, Value: in.Tags[k]})
	}
	return out
}

// Tags of generated instances (GenerateSeed): every instance has a role
// and an env tag drawn from these.
var (
	GeneratedRoles = []string{"web", "db", "cache"}
	GeneratedEnvs  = []string{"prod", "staging"}
)

// generatedAttrs fills the tags, network, project and charge type of a
// generated instance from h, using bits GenerateSeed leaves to them.
func generatedAttrs(in *Instance, h uint64) {
	role := GeneratedRoles[(h>>24)%uint64(len(GeneratedRoles))]
	env := GeneratedEnvs[(h>>32)%uint64(len(GeneratedEnvs))]
	in.Tags = map[string]string{"role": role, "env": env}
	// One VPC per env, one subnet per env and zone.
	in.VpcID = "vpc-" + env[:4] + "0001"
	in.SubnetID = "subnet-" + env[:4] + in.Zone[len(in.Zone)-1:] + "001"
	if (h>>40)%4 == 0 {
		in.ProjectID = 1001
	}
	in.ChargeType = ChargeTypeDefault
	if (h>>48)%10 < 3 {
		in.ChargeType = "PREPAID"
	}
}
