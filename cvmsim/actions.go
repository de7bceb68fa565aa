package cvmsim

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// All functions in this file run with s.mu held, except fail.

// resetRequest is one reset in generation-neutral form.
type resetRequest struct {
	gen            generation
	instanceID     string
	imageID        string // "" keeps the current image
	password       *string
	keyIDs         []string
	keepImageLogin bool
	hostName       *string
	extras         ResetExtras // recorded on acceptance (LastReset)
}

// reset validates and, if every check passes, accepts one reset. The order
// of checks is part of the contract tests rely on: ids, image, login,
// balance, SystemBusyFirst, SystemBusyRate, operation in progress.
func (s *Server) reset(req resetRequest, arrival, now time.Time, reqID string) *apiErr {
	id := req.instanceID
	if req.gen == genV2 && legacyIDRe.MatchString(id) {
		// v2 also accepts the old qcvm IDs; unknown ones fall through to NotFound.
		if uni, ok := s.legacy[id]; ok {
			id = uni
		}
	} else if !validInstanceID(id) {
		return newErr(errInstanceMalformed, "instance ID %q is malformed", id)
	}
	in, ok := s.instances[id]
	if !ok || !s.inRegion(in) {
		return newErr(errInstanceNotFound, "instance %s not found", req.instanceID)
	}
	if req.imageID != "" {
		if !validImageID(req.imageID) {
			return newErr(errImageMalformed, "image ID %q is malformed", req.imageID)
		}
		if s.images != nil && !s.images[req.imageID] {
			return newErr(errImageNotFound, "image %s not found", req.imageID)
		}
	}
	if req.keepImageLogin && (req.password != nil || len(req.keyIDs) > 0) {
		return newErr(errParameterConflict, "KeepImageLogin cannot be combined with Password or KeyIds")
	}
	if len(req.keyIDs) > 0 && in.OS == OSWindows {
		return newErr(errKeyPairWindows, "instance %s runs Windows, which does not support key pairs", id)
	}
	for _, k := range req.keyIDs {
		if !keyIDRe.MatchString(k) {
			return newErr(errKeyPairNotFound, "key pair %q not found", k)
		}
	}
	if req.password != nil && !validPassword(req.gen, in.OS, *req.password) {
		// Never echo the password.
		return newErr(errInvalidPassword, "password does not conform to the %s rules", in.OS)
	}
	if req.hostName != nil && !validHostName(in.OS, *req.hostName) {
		return newErr(errIllegalHostName, "HostName %q is illegal for %s", *req.hostName, in.OS)
	}
	f := s.faults
	if f.BalanceAfter > 0 && s.accepted >= f.BalanceAfter {
		return newErr(errBalance, "account balance is insufficient")
	}
	if in.busyCalls < f.SystemBusyFirst {
		in.busyCalls++
		return s.busy()
	}
	if s.roll(f.SystemBusyRate) {
		return s.busy()
	}
	s.settle(in, now)
	if in.operating() {
		return newErr(errInProgress, "instance %s has an operation in progress (%s %s)", id, in.opName, in.opRequestID)
	}

	s.accepted++
	in.accepted++
	s.stats.AcceptedResets[id]++
	s.stats.ResetTimes[id] = append(s.stats.ResetTimes[id], arrival)
	in.opName, in.opState, in.opRequestID, in.opErrMsg = "ResetInstance", OperationOperating, reqID, ""
	in.opEnds = now.Add(s.resetDuration())
	in.opTarget = in.ImageID
	if req.imageID != "" {
		in.opTarget = req.imageID
	}
	in.lastReset = req.extras
	in.opFails = s.roll(f.FailRate) || slices.Contains(f.FailIDs, id)
	// Drawn after FailRate, and only when enabled, so earlier dice repeat.
	in.opUnhealthy = s.roll(f.UnhealthyRate) || slices.Contains(f.UnhealthyIDs, id)
	s.recordConcurrency(in, now)
	s.syncHealth(in)
	return nil
}

// busy is an injected SystemBusy, with the configured API 3.0 code.
func (s *Server) busy() *apiErr {
	k := errSystemBusy
	k.v3 = s.faults.SystemBusyCodeV3
	return newErr(k, "system busy")
}

// fail answers e in the shape of gen. It reads no Server state, so it may
// run without s.mu.
func (s *Server) fail(gen generation, reqID string, e *apiErr) response {
	var resp response
	if gen == genV2 {
		resp = jsonResponse(e.kind.v2Desc, v2Body{Code: e.kind.v2Code, Message: e.msg, CodeDesc: e.kind.v2Desc})
	} else {
		resp = jsonResponse(e.kind.v3, v3Envelope{Response: v3ErrorBody{
			Error:     v3Error{Code: e.kind.v3, Message: e.msg},
			RequestID: reqID,
		}})
	}
	resp.err, resp.gen, resp.reqID = e, gen, reqID
	return resp
}

// jsonResponse is an HTTP 200 JSON answer; both generations answer 200 even
// for errors.
func jsonResponse(errCode string, v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		panic("cvmsim: marshal response: " + err.Error()) // our own types always marshal
	}
	return response{status: http.StatusOK, contentType: "application/json", body: b, errCode: errCode}
}

// ---- legacy v2 ----

// v2Body is the common part of every v2 answer. Code is always a JSON
// integer: the Go SDK cannot parse a quoted code.
type v2Body struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	CodeDesc string `json:"codeDesc"`
}

type v2ResetBody struct {
	v2Body
	RequestID string `json:"requestId"`
}

type v2DescribeBody struct {
	v2Body
	TotalCount  int          `json:"totalCount"`
	InstanceSet []v2Instance `json:"instanceSet"`
}

// v2Instance is the subset of the legacy instanceSet fields the simulator fills.
type v2Instance struct {
	InstanceName string   `json:"instanceName"`
	UnInstanceID string   `json:"unInstanceId"`
	InstanceID   string   `json:"instanceId"`
	UnImgID      string   `json:"unImgId"`
	Status       int      `json:"status"`
	Region       string   `json:"Region"`
	ZoneID       int      `json:"zoneId"`
	ZoneName     string   `json:"zoneName"`
	OS           string   `json:"os"`
	LanIP        string   `json:"lanIp"`
	WanIPSet     []string `json:"wanIpSet"`
}

var v2OK = v2Body{Code: 0, Message: "", CodeDesc: "Success"}

// serveV2 answers a legacy v2 request (§1, §2 of the reference).
func (s *Server) serveV2(method, host string, p url.Values, arrival, now time.Time, reqID string) response {
	if e := s.authV1(method, host, PathV2, p, now); e != nil {
		return s.fail(genV2, reqID, e)
	}
	action := p.Get("Action")
	s.countCall(action, arrival)
	s.countCaller(action, cmp.Or(s.canonRegion(genV2, p.Get("Region")), p.Get("Region")), p.Get("SecretId"), arrival)
	var limit int
	switch action {
	case "ResetInstances":
		limit = s.faults.ResetRateLimit
	case "DescribeInstances":
		limit = s.faults.DescribeRateLimit
	default:
		return s.fail(genV2, reqID, newErr(errInvalidAction, "action %q is not supported by %s", action, PathV2))
	}
	if !s.allow(action, limit, arrival) {
		return s.fail(genV2, reqID, newErr(errRateLimited, "%s is limited to %d requests per second", action, limit))
	}
	if !s.regionOK(genV2, p.Get("Region")) {
		return s.fail(genV2, reqID, newErr(errUnsupportedRegion, "Region %q is not %s", p.Get("Region"), s.cfg.Region))
	}
	s.callRegion = s.canonRegion(genV2, p.Get("Region"))
	if action == "ResetInstances" {
		return s.resetV2(p, arrival, now, reqID)
	}
	return s.describeV2(p, now, reqID)
}

func (s *Server) resetV2(p url.Values, arrival, now time.Time, reqID string) response {
	bad := func(format string, args ...any) response {
		return s.fail(genV2, reqID, newErr(errInvalidParameter, format, args...))
	}
	if p.Get("instanceId") == "" {
		return bad("instanceId is required")
	}
	if p.Has("imageId") != p.Has("imageType") {
		return bad("imageId and imageType must be given together")
	}
	if t := p.Get("imageType"); p.Has("imageType") && t != "1" && t != "2" && t != "3" && t != "4" {
		return bad("imageType must be 1, 2, 3 or 4")
	}
	for _, name := range []string{"needSecurityAgent", "needMonitorAgent"} {
		if v := p.Get(name); p.Has(name) && v != "0" && v != "1" {
			return bad("%s must be 0 or 1", name)
		}
	}
	if p.Has("rootSize") {
		if n, err := strconv.Atoi(p.Get("rootSize")); err != nil || n <= 0 {
			return bad("rootSize must be a positive integer")
		}
	}
	req := resetRequest{gen: genV2, instanceID: p.Get("instanceId"), imageID: p.Get("imageId")}
	if p.Has("imageId") && req.imageID == "" {
		return s.fail(genV2, reqID, newErr(errImageMalformed, "imageId is empty"))
	}
	if p.Has("password") {
		pw := p.Get("password")
		req.password = &pw
	}
	if e := s.reset(req, arrival, now, reqID); e != nil {
		return s.fail(genV2, reqID, e)
	}
	return jsonResponse("", v2ResetBody{v2Body: v2OK, RequestID: reqID})
}

func (s *Server) describeV2(p url.Values, now time.Time, reqID string) response {
	bad := func(format string, args ...any) response {
		return s.fail(genV2, reqID, newErr(errInvalidParameter, format, args...))
	}
	// instanceIds.N must be 0-based and contiguous; a 1-based client would
	// otherwise silently get an unfiltered list.
	var ids []string
	n := 0
	for name := range p {
		if strings.HasPrefix(name, "instanceIds.") {
			n++
		}
	}
	for i := range n {
		v, ok := p["instanceIds."+strconv.Itoa(i)]
		if !ok {
			return bad("instanceIds.N must be numbered 0, 1, 2, ... without gaps")
		}
		ids = append(ids, v[0])
	}
	if len(ids) > 100 {
		return bad("at most 100 instanceIds per request, got %d", len(ids))
	}
	offset, limit := 0, 20
	if p.Has("offset") {
		v, err := strconv.Atoi(p.Get("offset"))
		if err != nil || v < 0 {
			return bad("offset must be a non-negative integer")
		}
		offset = v
	}
	if p.Has("limit") {
		v, err := strconv.Atoi(p.Get("limit"))
		if err != nil || v < 1 || v > 100 {
			return bad("limit must be an integer within [1, 100]")
		}
		limit = v
	}
	status := -1
	if p.Has("status") {
		v, err := strconv.Atoi(p.Get("status"))
		if err != nil {
			return bad("status must be an integer")
		}
		status = v
	}
	want := map[string]bool{}
	for _, id := range ids {
		switch {
		case legacyIDRe.MatchString(id):
			want[s.legacy[id]] = true
		case validInstanceID(id):
			want[id] = true
		default:
			return s.fail(genV2, reqID, newErr(errInstanceMalformed, "instance ID %q is malformed", id))
		}
	}
	all := s.listInstances(now, func(in *instance) bool {
		return (len(ids) == 0 || want[in.ID]) && (status < 0 || in.v2Status() == status)
	})
	body := v2DescribeBody{v2Body: v2OK, TotalCount: len(all), InstanceSet: []v2Instance{}}
	for _, in := range page(all, offset, limit) {
		body.InstanceSet = append(body.InstanceSet, v2Instance{
			InstanceName: in.name(),
			UnInstanceID: in.ID,
			InstanceID:   in.legacyID,
			UnImgID:      in.ImageID,
			Status:       in.v2Status(),
			Region:       legacyRegions[cmp.Or(in.Region, s.cfg.Region)],
			ZoneID:       zoneID(in.Zone),
			ZoneName:     in.Zone,
			OS:           in.osName(),
			LanIP:        in.lanIP,
			WanIPSet:     []string{in.wanIP},
		})
	}
	return jsonResponse("", body)
}

// zoneID is the legacy numeric zone ID: 100000 + the zone number, so
// ap-guangzhou-3 is 100003 (the pattern of the real IDs; [U] for others).
func zoneID(zone string) int {
	i := strings.LastIndexByte(zone, '-')
	n, err := strconv.Atoi(zone[i+1:])
	if err != nil {
		return 0
	}
	return 100000 + n
}

// ---- API 3.0 ----

type v3Envelope struct {
	Response any `json:"Response"`
}

type v3Error struct {
	Code    string `json:"Code"`
	Message string `json:"Message"`
}

type v3ErrorBody struct {
	Error     v3Error `json:"Error"`
	RequestID string  `json:"RequestId"`
}

type v3ResetBody struct {
	RequestID string `json:"RequestId"`
}

type v3DescribeBody struct {
	TotalCount  int          `json:"TotalCount"`
	InstanceSet []v3Instance `json:"InstanceSet"`
	RequestID   string       `json:"RequestId"`
}

// v3Instance is the subset of the API 3.0 Instance the simulator fills.
// LatestOperation* are null until a reset was accepted, as in the real API.
type v3Instance struct {
	InstanceID               string      `json:"InstanceId"`
	InstanceName             string      `json:"InstanceName"`
	Placement                v3Placement `json:"Placement"`
	ImageID                  string      `json:"ImageId"`
	OsName                   string      `json:"OsName"`
	InstanceState            string      `json:"InstanceState"`
	RestrictState            string      `json:"RestrictState"`
	PrivateIPAddresses       []string    `json:"PrivateIpAddresses"`
	PublicIPAddresses        []string    `json:"PublicIpAddresses"`
	LatestOperation          *string     `json:"LatestOperation"`
	LatestOperationState     *string     `json:"LatestOperationState"`
	LatestOperationRequestID *string     `json:"LatestOperationRequestId"`
	LatestOperationErrorMsg  *string     `json:"LatestOperationErrorMsg"`
	VirtualPrivateCloud      v3VPC       `json:"VirtualPrivateCloud"`
	InstanceChargeType       string      `json:"InstanceChargeType"`
	Tags                     []v3Tag     `json:"Tags"`
}

type v3Placement struct {
	Zone      string `json:"Zone"`
	ProjectID int    `json:"ProjectId"`
}

// v3ResetParams are the ResetInstance parameters (SDK ResetInstanceRequestParams).
type v3ResetParams struct {
	InstanceId      *string
	ImageId         *string
	SystemDisk      *v3SystemDisk
	LoginSettings   *v3LoginSettings
	EnhancedService *v3EnhancedService
	HostName        *string
	UserData        *string
}

type v3SystemDisk struct {
	DiskType *string
	DiskId   *string
	DiskSize *int64
}

type v3LoginSettings struct {
	Password       *string
	KeyIds         []string
	KeepImageLogin *string
}

type v3EnhancedService struct {
	SecurityService   *v3Enabled
	MonitorService    *v3Enabled
	AutomationService *v3Enabled
}

type v3Enabled struct {
	Enabled *bool
}

// v3DescribeParams are the DescribeInstances parameters.
type v3DescribeParams struct {
	InstanceIds []string
	Filters     []v3Filter
	Offset      *int64
	Limit       *int64
}

type v3Filter struct {
	Name   *string
	Values []string
}

// serveV1 answers an API 3.0 request signed with signature v1, on / or, in
// the transitional generation, on the v2 path.
func (s *Server) serveV1(method, host, path string, p url.Values, arrival, now time.Time, reqID string) response {
	if e := s.authV1(method, host, path, p, now); e != nil {
		return s.fail(genV3, reqID, e)
	}
	action := p.Get("Action")
	s.countCall(action, arrival)
	s.countCaller(action, p.Get("Region"), p.Get("SecretId"), arrival)
	if p.Get("Version") != apiVersion {
		return s.fail(genV3, reqID, newErr(errNoSuchVersion, "Version %q is not %s", p.Get("Version"), apiVersion))
	}
	return s.dispatchV3(action, p.Get("Region"), flattenForm(p), arrival, now, reqID)
}

// serveTC3 answers an API 3.0 request signed with TC3-HMAC-SHA256.
func (s *Server) serveTC3(r *http.Request, body []byte, arrival, now time.Time, reqID string) response {
	if e := s.authTC3(r, body, now); e != nil {
		return s.fail(genV3, reqID, e)
	}
	action := r.Header.Get("X-TC-Action")
	s.countCall(action, arrival)
	s.countCaller(action, r.Header.Get("X-TC-Region"), tc3SecretID(r), arrival)
	service := tc3ServiceOf(r)
	if v, want := r.Header.Get("X-TC-Version"), serviceVersions[service]; v != want {
		return s.fail(genV3, reqID, newErr(errNoSuchVersion, "X-TC-Version %q is not %s (%s)", v, want, service))
	}
	var leaves map[string]leaf
	if r.Method == http.MethodGet {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return s.fail(genV3, reqID, newErr(errInvalidParameter, "malformed query"))
		}
		leaves = flattenForm(q)
	} else {
		var e *apiErr
		if leaves, e = flattenJSON(body); e != nil {
			return s.fail(genV3, reqID, e)
		}
	}
	if service != "cvm" {
		return s.dispatchService(service, action, r.Header.Get("X-TC-Region"), leaves, arrival, now, reqID)
	}
	return s.dispatchV3(action, r.Header.Get("X-TC-Region"), leaves, arrival, now, reqID)
}

// dispatchV3 runs an authenticated API 3.0 action.
func (s *Server) dispatchV3(action, region string, leaves map[string]leaf, arrival, now time.Time, reqID string) response {
	var limit int
	switch action {
	case "ResetInstance":
		limit = s.faults.ResetRateLimit
	case "DescribeInstances":
		limit = s.faults.DescribeRateLimit
	default:
		return s.fail(genV3, reqID, newErr(errInvalidAction, "action %q does not exist or is not simulated", action))
	}
	if !s.allow(action, limit, arrival) {
		return s.fail(genV3, reqID, newErr(errRateLimited, "%s is limited to %d requests per second", action, limit))
	}
	if region == "" {
		return s.fail(genV3, reqID, newErr(errMissingParameter, "missing Region"))
	}
	if !s.regionOK(genV3, region) {
		return s.fail(genV3, reqID, newErr(errUnsupportedRegion, "region %q is not %s", region, s.cfg.Region))
	}
	s.callRegion = s.canonRegion(genV3, region)
	if action == "ResetInstance" {
		return s.resetV3(leaves, arrival, now, reqID)
	}
	return s.describeV3(leaves, now, reqID)
}

func (s *Server) resetV3(leaves map[string]leaf, arrival, now time.Time, reqID string) response {
	var p v3ResetParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	if p.InstanceId == nil {
		return s.fail(genV3, reqID, newErr(errMissingParameter, "missing InstanceId"))
	}
	req := resetRequest{gen: genV3, instanceID: *p.InstanceId, hostName: p.HostName}
	if p.ImageId != nil {
		if *p.ImageId == "" {
			return s.fail(genV3, reqID, newErr(errImageMalformed, "ImageId is empty"))
		}
		req.imageID = *p.ImageId
	}
	if ls := p.LoginSettings; ls != nil {
		req.password, req.keyIDs = ls.Password, ls.KeyIds
		if ls.KeepImageLogin != nil {
			switch *ls.KeepImageLogin {
			case "TRUE":
				req.keepImageLogin = true
			case "FALSE":
			default:
				return s.fail(genV3, reqID, newErr(errInvalidParamValue, `LoginSettings.KeepImageLogin must be "TRUE" or "FALSE"`))
			}
		}
	}
	if p.SystemDisk != nil && p.SystemDisk.DiskSize != nil && *p.SystemDisk.DiskSize <= 0 {
		return s.fail(genV3, reqID, newErr(errInvalidParamValue, "SystemDisk.DiskSize must be positive"))
	}
	if p.UserData != nil {
		raw, err := base64.StdEncoding.DecodeString(*p.UserData)
		if err != nil || len(*p.UserData) > 16<<10 {
			return s.fail(genV3, reqID, newErr(errInvalidUserData, "UserData must be base64 of at most 16 KB"))
		}
		req.extras.UserData = raw
	}
	if es := p.EnhancedService; es != nil && es.AutomationService != nil && es.AutomationService.Enabled != nil {
		req.extras.AutomationService = es.AutomationService.Enabled
	}
	if e := s.reset(req, arrival, now, reqID); e != nil {
		return s.fail(genV3, reqID, e)
	}
	return jsonResponse("", v3Envelope{Response: v3ResetBody{RequestID: reqID}})
}

func (s *Server) describeV3(leaves map[string]leaf, now time.Time, reqID string) response {
	var p v3DescribeParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	switch {
	case len(p.InstanceIds) > 0 && len(p.Filters) > 0:
		return s.fail(genV3, reqID, newErr(errCoexistIDsFilters, "InstanceIds and Filters cannot be specified at the same time"))
	case len(p.InstanceIds) > 100:
		return s.fail(genV3, reqID, newErr(errLimitExceeded, "at most 100 InstanceIds per request, got %d", len(p.InstanceIds)))
	}
	filters, e := parseFilters(p.Filters)
	if e != nil {
		return s.fail(genV3, reqID, e)
	}
	offset, limit := 0, 20
	if p.Offset != nil {
		if *p.Offset < 0 {
			return s.fail(genV3, reqID, newErr(errInvalidParamValue, "Offset must not be negative"))
		}
		offset = int(*p.Offset)
	}
	if p.Limit != nil {
		if *p.Limit < 1 || *p.Limit > maxLimit {
			return s.fail(genV3, reqID, newErr(errInvalidParamValue, "Limit must be within [1, %d]", maxLimit))
		}
		limit = int(*p.Limit)
	}
	want := map[string]bool{}
	for _, id := range p.InstanceIds {
		if !validInstanceID(id) {
			return s.fail(genV3, reqID, newErr(errInstanceMalformed, "instance ID %q is malformed", id))
		}
		want[id] = true
	}
	all := s.listInstances(now, func(in *instance) bool {
		if len(want) > 0 && !want[in.ID] {
			return false
		}
		for _, f := range filters {
			if !f.matches(in) {
				return false
			}
		}
		return true
	})
	body := v3DescribeBody{TotalCount: len(all), InstanceSet: []v3Instance{}, RequestID: reqID}
	for _, in := range page(all, offset, limit) {
		body.InstanceSet = append(body.InstanceSet, v3Instance{
			InstanceID:               in.ID,
			InstanceName:             in.name(),
			Placement:                v3Placement{Zone: in.Zone, ProjectID: in.ProjectID},
			VirtualPrivateCloud:      v3VPC{VpcID: in.VpcID, SubnetID: in.SubnetID},
			InstanceChargeType:       in.chargeType(),
			Tags:                     in.v3Tags(),
			ImageID:                  in.ImageID,
			OsName:                   in.osName(),
			InstanceState:            in.State,
			RestrictState:            "NORMAL",
			PrivateIPAddresses:       []string{in.lanIP},
			PublicIPAddresses:        []string{in.wanIP},
			LatestOperation:          nonEmpty(in.opName),
			LatestOperationState:     nonEmpty(in.opState),
			LatestOperationRequestID: nonEmpty(in.opRequestID),
			LatestOperationErrorMsg:  nonEmpty(in.opErrMsg),
		})
	}
	return jsonResponse("", v3Envelope{Response: body})
}

// nonEmpty maps "" to a JSON null.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// tc3SecretID returns the SecretId of a TC3 Authorization header (checked
// by authTC3 before).
func tc3SecretID(r *http.Request) string {
	_, rest, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	id, _, _ := strings.Cut(rest, "/")
	return id
}
