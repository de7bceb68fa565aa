package cvm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Limits of a filtered DescribeInstances call (API 3.0; cvm-api.md §3.9).
const (
	// MaxFilters is the most Filters one call takes.
	MaxFilters = 10
	// MaxFilterValues is the most Values one Filter takes.
	MaxFilterValues = 5
	// MaxLimit is the largest Limit, the page size.
	MaxLimit = 100
	// MaxUserData is the most ResetInstance UserData may take,
	// base64-encoded: 16 KB.
	MaxUserData = 16 << 10
)

// Filter is one DescribeInstances filter (API 3.0 Filters.N): an instance
// matches when its attribute Name equals one of Values. Filters of one
// call must all match. Names the cloud knows include zone, project-id,
// vpc-id, subnet-id, instance-id, instance-name, image-id,
// instance-charge-type, instance-state, tag-key, tag-value and tag:KEY.
type Filter struct {
	Name   string
	Values []string
}

// Lister lists instances by filters. Both clients New returns implement
// it; the V2 one refuses, since the legacy API has no such filters.
type Lister interface {
	// DescribeInstancesFiltered calls DescribeInstances with Filters (at
	// most MaxFilters, each with 1 to MaxFilterValues values), Offset and
	// Limit (1 to MaxLimit), and returns one page of instances with the
	// TotalCount of all that match. Filters and InstanceIds are never
	// combined (the API refuses it); an empty filters is refused rather
	// than listing every instance of the region.
	DescribeInstancesFiltered(ctx context.Context, filters []Filter, offset, limit int) (page []Instance, total int, err error)
}

var (
	_ Lister = (*v3Client)(nil)
	_ Lister = (*v2Client)(nil)
)

// checkFilters refuses what the API would refuse, before sending.
func checkFilters(gen Generation, action string, filters []Filter, offset, limit int) error {
	switch {
	case len(filters) == 0:
		return invalid(gen, action, "no filters: refusing to list every instance of the region")
	case len(filters) > MaxFilters:
		return invalid(gen, action, "%d filters, at most %d per call", len(filters), MaxFilters)
	case offset < 0:
		return invalid(gen, action, "Offset %d is negative", offset)
	case limit < 1 || limit > MaxLimit:
		return invalid(gen, action, "Limit %d: want 1 to %d", limit, MaxLimit)
	}
	for i, f := range filters {
		switch {
		case f.Name == "":
			return invalid(gen, action, "filter %d has no name", i)
		case len(f.Values) == 0 || len(f.Values) > MaxFilterValues:
			return invalid(gen, action, "filter %s has %d values: want 1 to %d", f.Name, len(f.Values), MaxFilterValues)
		}
	}
	return nil
}

// DescribeInstancesFiltered implements Lister for API 3.0.
//
// Doc: https://cloud.tencent.com/document/api/213/15728 (Filters),
// https://cloud.tencent.com/document/api/213/15753#Filter.
func (c *v3Client) DescribeInstancesFiltered(ctx context.Context, filters []Filter, offset, limit int) ([]Instance, int, error) {
	const action = "DescribeInstances"
	if err := checkFilters(V3, action, filters, offset, limit); err != nil {
		return nil, 0, err
	}
	fs := make([]map[string]any, len(filters))
	for i, f := range filters {
		fs[i] = map[string]any{"Name": f.Name, "Values": f.Values}
	}
	return c.describe(ctx, action, map[string]any{"Filters": fs, "Offset": offset, "Limit": limit})
}

// DescribeInstancesFiltered implements Lister: the legacy API has other
// filter parameters and no tags, so it always fails with ErrInvalidRequest.
func (c *v2Client) DescribeInstancesFiltered(ctx context.Context, filters []Filter, offset, limit int) ([]Instance, int, error) {
	return nil, 0, invalid(V2, "DescribeInstances", "Filters are not supported in v2: selecting instances by filters and tags needs API 3.0")
}

// v3Instance is the part of an API 3.0 Instance the client reads.
type v3Instance struct {
	InstanceID string `json:"InstanceId"`
	Placement  struct {
		Zone string `json:"Zone"`
	} `json:"Placement"`
	ImageID                  string   `json:"ImageId"`
	OSName                   string   `json:"OsName"`
	InstanceState            string   `json:"InstanceState"`
	LatestOperation          string   `json:"LatestOperation"`
	LatestOperationState     string   `json:"LatestOperationState"`
	LatestOperationRequestID string   `json:"LatestOperationRequestId"`
	LatestOperationErrorMsg  string   `json:"LatestOperationErrorMsg"`
	PrivateIPAddresses       []string `json:"PrivateIpAddresses"`
	PublicIPAddresses        []string `json:"PublicIpAddresses"`
	InstanceName             string   `json:"InstanceName"`
	Tags                     []struct {
		Key   string `json:"Key"`
		Value string `json:"Value"`
	} `json:"Tags"`
}

// describe sends one DescribeInstances call with params and returns its
// instances and TotalCount.
func (c *v3Client) describe(ctx context.Context, action string, params map[string]any) ([]Instance, int, error) {
	var out struct {
		Response struct {
			TotalCount  json.Number  `json:"TotalCount"`
			InstanceSet []v3Instance `json:"InstanceSet"`
		} `json:"Response"`
	}
	cred, err := c.do(ctx, action, params, &out)
	if err != nil {
		return nil, 0, err
	}
	total := len(out.Response.InstanceSet)
	if s := out.Response.TotalCount.String(); s != "" {
		n, err := out.Response.TotalCount.Int64()
		if err != nil || n < 0 {
			return nil, 0, fmt.Errorf("cvm: v3 %s: TotalCount %s is not a count", action, strings.TrimSpace(s))
		}
		total = int(n)
	}
	r := newRedactor(cred)
	res := make([]Instance, 0, len(out.Response.InstanceSet))
	for _, in := range out.Response.InstanceSet {
		got := Instance{
			InstanceID:               in.InstanceID,
			Zone:                     in.Placement.Zone,
			ImageID:                  in.ImageID,
			OSName:                   in.OSName,
			State:                    in.InstanceState,
			LatestOperation:          in.LatestOperation,
			LatestOperationState:     in.LatestOperationState,
			LatestOperationRequestID: in.LatestOperationRequestID,
			LatestOperationErrorMsg:  r.clean(in.LatestOperationErrorMsg),
			PrivateIPs:               nonEmpty(in.PrivateIPAddresses),
			PublicIPs:                nonEmpty(in.PublicIPAddresses),
			Name:                     in.InstanceName,
		}
		if len(in.Tags) > 0 {
			got.Tags = make(map[string]string, len(in.Tags))
			for _, t := range in.Tags {
				got.Tags[t.Key] = t.Value
			}
		}
		res = append(res, got)
	}
	return res, total, nil
}
