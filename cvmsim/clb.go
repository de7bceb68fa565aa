package cvmsim

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file simulates the CLB (Cloud Load Balancer) actions issue 11
// needs, service clb, version 2018-03-17: DescribeTargets,
// DescribeTargetHealth, ModifyTargetWeight, BatchModifyTargetWeight and
// DescribeTaskStatus. Weight changes are asynchronous as in the real API:
// they take effect when their task ends, Config.TaskDuration after the
// call. Functions on Server run with s.mu held.

// LoadBalancer is a simulated CLB instance.
type LoadBalancer struct {
	// ID is "lb-" and 8 lower-case letters or digits.
	ID string `json:"load_balancer_id"`
	// Listeners are its listeners, in the order DescribeTargets lists them.
	Listeners []Listener `json:"listeners"`
}

// Listener is a CLB listener: layer 4 (targets on the listener) or, with
// Rules, layer 7 (targets on each forwarding rule).
type Listener struct {
	// ID is "lbl-" and 8 lower-case letters or digits.
	ID string `json:"listener_id"`
	// Protocol is TCP, UDP, TCP_SSL (layer 4), HTTP or HTTPS (layer 7).
	// Defaults to TCP, or HTTP with Rules.
	Protocol string `json:"protocol,omitempty"`
	// Port is the listener's port. Defaults to 80.
	Port int `json:"port,omitempty"`
	// EveryInstance registers every instance of the simulator, those
	// added later included, as a target on BackendPort with weight
	// WeightDefault: on the listener, or on each rule of a layer-7 one.
	EveryInstance bool `json:"every_instance,omitempty"`
	// BackendPort is the targets' port for EveryInstance. Defaults to Port.
	BackendPort int `json:"backend_port,omitempty"`
	// Targets are explicitly bound targets of a layer-4 listener.
	Targets []Target `json:"targets,omitempty"`
	// Rules are the forwarding rules of a layer-7 listener.
	Rules []Rule `json:"rules,omitempty"`
}

// Rule is a layer-7 forwarding rule.
type Rule struct {
	// LocationID is "loc-" and 8 lower-case letters or digits.
	LocationID string `json:"location_id"`
	// Domain and URL describe the rule. Default to "sim.example.com" and "/".
	Domain string `json:"domain,omitempty"`
	URL    string `json:"url,omitempty"`
	// Targets are the rule's explicitly bound targets.
	Targets []Target `json:"targets,omitempty"`
}

// Target is a bound backend: an instance's port and its weight, 0-100, as
// given (0 is a drained target).
type Target struct {
	InstanceID string `json:"instance_id"`
	Port       int    `json:"port"`
	Weight     int    `json:"weight"`
}

// WeightChange is one target weight that took effect, for tests asserting
// the order drain → reset → restore (Server.WeightHistory).
type WeightChange struct {
	// At is when the change took effect: its task's end.
	At time.Time `json:"at"`
	// RequestedAt is when the modifying call arrived.
	RequestedAt time.Time `json:"requested_at"`
	// TaskID is the RequestId of the modifying call.
	TaskID         string `json:"task_id"`
	Action         string `json:"action"`
	LoadBalancerID string `json:"load_balancer_id"`
	ListenerID     string `json:"listener_id"`
	LocationID     string `json:"location_id,omitempty"`
	InstanceID     string `json:"instance_id"`
	Port           int    `json:"port"`
	From           int    `json:"from"`
	To             int    `json:"to"`
}

var (
	lbIDRe       = regexp.MustCompile(`^lb-[0-9a-z]{8}$`)
	listenerIDRe = regexp.MustCompile(`^lbl-[0-9a-z]{8}$`)
	locationIDRe = regexp.MustCompile(`^loc-[0-9a-z]{8}$`)
)

// layer7 reports whether a protocol is layer 7.
func layer7(protocol string) bool { return protocol == "HTTP" || protocol == "HTTPS" }

// validateLoadBalancers reports the first malformed load balancer.
func validateLoadBalancers(lbs []LoadBalancer) error {
	seen := map[string]bool{}
	for _, lb := range lbs {
		if !lbIDRe.MatchString(lb.ID) {
			return fmt.Errorf("cvmsim: LoadBalancers: ID %q is not lb- followed by 8 lower-case letters or digits", lb.ID)
		}
		if seen[lb.ID] {
			return fmt.Errorf("cvmsim: LoadBalancers: %s appears twice", lb.ID)
		}
		seen[lb.ID] = true
		for _, l := range lb.Listeners {
			where := "cvmsim: LoadBalancers: " + lb.ID + ": listener " + l.ID
			if !listenerIDRe.MatchString(l.ID) {
				return fmt.Errorf("%s: ID is not lbl- followed by 8 lower-case letters or digits", where)
			}
			if seen[lb.ID+"/"+l.ID] {
				return fmt.Errorf("%s appears twice", where)
			}
			seen[lb.ID+"/"+l.ID] = true
			p := l.protocol()
			if !slices.Contains([]string{"TCP", "UDP", "TCP_SSL", "HTTP", "HTTPS"}, p) {
				return fmt.Errorf("%s: Protocol %q is not TCP, UDP, TCP_SSL, HTTP or HTTPS", where, p)
			}
			if layer7(p) != (len(l.Rules) > 0) {
				return fmt.Errorf("%s: a %s listener must have Rules if and only if it is HTTP or HTTPS", where, p)
			}
			if len(l.Rules) > 0 && len(l.Targets) > 0 {
				return fmt.Errorf("%s: a layer-7 listener binds targets on its Rules, not Targets", where)
			}
			for _, port := range []int{l.Port, l.BackendPort} {
				if port < 0 || port > 65535 {
					return fmt.Errorf("%s: port %d is out of range", where, port)
				}
			}
			targets := slices.Clone(l.Targets)
			for _, r := range l.Rules {
				if !locationIDRe.MatchString(r.LocationID) {
					return fmt.Errorf("%s: rule %q is not loc- followed by 8 lower-case letters or digits", where, r.LocationID)
				}
				targets = append(targets, r.Targets...)
			}
			for _, t := range targets {
				if !validInstanceID(t.InstanceID) || t.Port < 1 || t.Port > 65535 || t.Weight < 0 || t.Weight > 100 {
					return fmt.Errorf("%s: target %+v needs an instance ID, a port in [1, 65535] and a weight in [0, 100]", where, t)
				}
			}
		}
	}
	return nil
}

func (l Listener) protocol() string {
	switch {
	case l.Protocol != "":
		return l.Protocol
	case len(l.Rules) > 0:
		return "HTTP"
	}
	return "TCP"
}

// addListenerFlag parses a -clb value LB:LISTENER:PORT[:LOCATION] into
// lbs: a listener with every instance as a target on PORT, layer 7 with
// one rule when LOCATION is given.
func addListenerFlag(lbs []LoadBalancer, v string) ([]LoadBalancer, error) {
	parts := strings.Split(v, ":")
	if len(parts) != 3 && len(parts) != 4 {
		return nil, fmt.Errorf("%q is not LB:LISTENER:PORT[:LOCATION]", v)
	}
	port, err := strconv.Atoi(parts[2])
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("%q: port %q is not in [1, 65535]", v, parts[2])
	}
	l := Listener{ID: parts[1], Port: port, EveryInstance: true}
	if len(parts) == 4 {
		l.Rules = []Rule{{LocationID: parts[3]}}
	}
	lbs = slices.Clone(lbs)
	i := slices.IndexFunc(lbs, func(lb LoadBalancer) bool { return lb.ID == parts[0] })
	if i < 0 {
		lbs = append(lbs, LoadBalancer{ID: parts[0]})
		i = len(lbs) - 1
	}
	lbs[i].Listeners = append(slices.Clone(lbs[i].Listeners), l)
	if err := validateLoadBalancers(lbs); err != nil {
		return nil, err
	}
	return lbs, nil
}

// clbState is the simulator's state of every load balancer. Guarded by
// Server.mu.
type clbState struct {
	order []*lbState
	byID  map[string]*lbState
	tasks map[string]*clbTask // RequestId of the modifying call -> task
	queue []*clbTask          // unapplied tasks, in order of end
	// history is every weight change that took effect, per instance.
	history map[string][]WeightChange
}

type lbState struct {
	id        string
	listeners []*lbListener
	byID      map[string]*lbListener
	busyUntil time.Time // end of its latest task
}

type lbListener struct {
	id, protocol string
	port         int
	every        bool // EveryInstance
	backendPort  int
	locations    []*lbLocation // one with id "" for layer 4
}

type lbLocation struct {
	id, domain, url string
	targets         []*lbTarget
}

type lbTarget struct {
	instanceID   string
	port, weight int
}

// clbTask is an accepted weight change: it applies at end.
type clbTask struct {
	id, lb, action string
	requested, end time.Time
	changes        []weightSet
}

type weightSet struct {
	l      *lbListener
	loc    *lbLocation
	t      *lbTarget
	weight int
}

func newCLBState(lbs []LoadBalancer) clbState {
	st := clbState{byID: map[string]*lbState{}, tasks: map[string]*clbTask{}, history: map[string][]WeightChange{}}
	for _, lb := range lbs {
		ls := &lbState{id: lb.ID, byID: map[string]*lbListener{}}
		for _, l := range lb.Listeners {
			ll := &lbListener{id: l.ID, protocol: l.protocol(), port: cmp.Or(l.Port, 80), every: l.EveryInstance}
			ll.backendPort = cmp.Or(l.BackendPort, ll.port)
			if len(l.Rules) == 0 {
				ll.locations = []*lbLocation{{targets: targetStates(l.Targets)}}
			}
			for _, r := range l.Rules {
				ll.locations = append(ll.locations, &lbLocation{
					id: r.LocationID, domain: cmp.Or(r.Domain, "sim.example.com"), url: cmp.Or(r.URL, "/"),
					targets: targetStates(r.Targets),
				})
			}
			ls.listeners = append(ls.listeners, ll)
			ls.byID[l.ID] = ll
		}
		st.order = append(st.order, ls)
		st.byID[lb.ID] = ls
	}
	return st
}

func targetStates(ts []Target) []*lbTarget {
	out := make([]*lbTarget, 0, len(ts))
	for _, t := range ts {
		out = append(out, &lbTarget{instanceID: t.InstanceID, port: t.Port, weight: t.Weight})
	}
	return out
}

// register binds a newly added instance on every EveryInstance listener.
func (c *clbState) register(id string) {
	for _, lb := range c.order {
		for _, l := range lb.listeners {
			if !l.every {
				continue
			}
			for _, loc := range l.locations {
				if loc.find(id, l.backendPort) == nil {
					loc.targets = append(loc.targets, &lbTarget{instanceID: id, port: l.backendPort, weight: WeightDefault})
				}
			}
		}
	}
}

func (loc *lbLocation) find(id string, port int) *lbTarget {
	for _, t := range loc.targets {
		if t.instanceID == id && t.port == port {
			return t
		}
	}
	return nil
}

// settleTasks applies every task that has ended by now, in order.
func (c *clbState) settleTasks(now time.Time) {
	for len(c.queue) > 0 && !now.Before(c.queue[0].end) {
		task := c.queue[0]
		c.queue = c.queue[1:]
		for _, ch := range task.changes {
			c.history[ch.t.instanceID] = append(c.history[ch.t.instanceID], WeightChange{
				At: task.end, RequestedAt: task.requested, TaskID: task.id, Action: task.action,
				LoadBalancerID: task.lb, ListenerID: ch.l.id, LocationID: ch.loc.id,
				InstanceID: ch.t.instanceID, Port: ch.t.port, From: ch.t.weight, To: ch.weight,
			})
			ch.t.weight = ch.weight
		}
	}
}

// WeightHistory returns every weight change of instance id's targets that
// has taken effect, oldest first.
func (s *Server) WeightHistory(id string) []WeightChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lbs.settleTasks(s.cfg.Clock.Now())
	return slices.Clone(s.lbs.history[id])
}

// Weights returns instance id's current weight on each listener it is
// bound to, keyed "LB/LISTENER" (layer 4) or "LB/LISTENER/LOCATION".
func (s *Server) Weights(id string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lbs.settleTasks(s.cfg.Clock.Now())
	out := map[string]int{}
	for _, lb := range s.lbs.order {
		for _, l := range lb.listeners {
			for _, loc := range l.locations {
				for _, t := range loc.targets {
					if t.instanceID == id {
						key := lb.id + "/" + l.id
						if loc.id != "" {
							key += "/" + loc.id
						}
						out[key] = t.weight
					}
				}
			}
		}
	}
	return out
}

// SetWeight sets instance id's weight on the listener key names (as
// Weights keys it) at once, as an operator in the console would; the
// change is in WeightHistory with Action "console". It reports whether
// the instance is bound there.
func (s *Server) SetWeight(id, key string, weight int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock.Now()
	s.lbs.settleTasks(now)
	set := false
	for _, lb := range s.lbs.order {
		for _, l := range lb.listeners {
			for _, loc := range l.locations {
				k := lb.id + "/" + l.id
				if loc.id != "" {
					k += "/" + loc.id
				}
				for _, t := range loc.targets {
					if t.instanceID != id || k != key {
						continue
					}
					s.lbs.history[id] = append(s.lbs.history[id], WeightChange{At: now, RequestedAt: now, Action: "console",
						LoadBalancerID: lb.id, ListenerID: l.id, LocationID: loc.id, InstanceID: id, Port: t.port, From: t.weight, To: weight})
					t.weight, set = weight, true
				}
			}
		}
	}
	return set
}

// ---- wire shapes ----

type clbDescribeTargetsParams struct {
	LoadBalancerId *string
	ListenerIds    []string
	Protocol       *string
	Port           *int64
}

type clbBackend struct {
	Type               string   `json:"Type"`
	InstanceID         string   `json:"InstanceId"`
	Port               int      `json:"Port"`
	Weight             int      `json:"Weight"`
	PrivateIPAddresses []string `json:"PrivateIpAddresses"`
	PublicIPAddresses  []string `json:"PublicIpAddresses"`
	InstanceName       string   `json:"InstanceName"`
}

type clbRuleTargets struct {
	LocationID string       `json:"LocationId"`
	Domain     string       `json:"Domain"`
	URL        string       `json:"Url"`
	Targets    []clbBackend `json:"Targets"`
}

type clbListenerBackend struct {
	ListenerID string           `json:"ListenerId"`
	Protocol   string           `json:"Protocol"`
	Port       int              `json:"Port"`
	Targets    []clbBackend     `json:"Targets"`
	Rules      []clbRuleTargets `json:"Rules"`
}

type clbDescribeTargetsBody struct {
	Listeners []clbListenerBackend `json:"Listeners"`
	RequestID string               `json:"RequestId"`
}

type clbTargetHealthParams struct {
	LoadBalancerIds []string
}

type clbTargetHealth struct {
	IP                 string `json:"IP"`
	Port               int    `json:"Port"`
	HealthStatus       bool   `json:"HealthStatus"`
	TargetID           string `json:"TargetId"`
	HealthStatusDetail string `json:"HealthStatusDetail"`
}

type clbRuleHealth struct {
	LocationID string            `json:"LocationId"`
	Domain     string            `json:"Domain"`
	URL        string            `json:"Url"`
	Targets    []clbTargetHealth `json:"Targets"`
}

type clbListenerHealth struct {
	ListenerID string          `json:"ListenerId"`
	Protocol   string          `json:"Protocol"`
	Port       int             `json:"Port"`
	Rules      []clbRuleHealth `json:"Rules"`
}

type clbLoadBalancerHealth struct {
	LoadBalancerID string              `json:"LoadBalancerId"`
	Listeners      []clbListenerHealth `json:"Listeners"`
}

type clbTargetHealthBody struct {
	LoadBalancers []clbLoadBalancerHealth `json:"LoadBalancers"`
	RequestID     string                  `json:"RequestId"`
}

// clbTargetParam is a Target in a weight change (the API's Target type).
type clbTargetParam struct {
	InstanceId *string
	Port       *int64
	Type       *string
	Weight     *int64
	EniIp      *string
}

// clbWeightRule is an RsWeightRule.
type clbWeightRule struct {
	ListenerId *string
	LocationId *string
	Domain     *string
	Url        *string
	Targets    []clbTargetParam
	Weight     *int64
}

type clbBatchParams struct {
	LoadBalancerId *string
	ModifyList     []clbWeightRule
}

type clbModifyParams struct {
	LoadBalancerId *string
	ListenerId     *string
	LocationId     *string
	Domain         *string
	Url            *string
	Targets        []clbTargetParam
	Weight         *int64
}

type clbTaskStatusParams struct {
	TaskId *string
}

type clbTaskStatusBody struct {
	Status          int      `json:"Status"`
	LoadBalancerIDs []string `json:"LoadBalancerIds"`
	RequestID       string   `json:"RequestId"`
}

// maxWeightTargets is the documented cap of BatchModifyTargetWeight.
const maxWeightTargets = 500

// ---- actions ----

func (s *Server) lookupLB(id *string) (*lbState, *apiErr) {
	if id == nil || *id == "" {
		return nil, newErr(errMissingParameter, "missing LoadBalancerId")
	}
	lb := s.lbs.byID[*id]
	if lb == nil {
		return nil, newErr(errLBNotFound, "load balancer %s not found", *id)
	}
	return lb, nil
}

func (s *Server) backend(t *lbTarget) clbBackend {
	b := clbBackend{Type: "CVM", InstanceID: t.instanceID, Port: t.port, Weight: t.weight,
		PrivateIPAddresses: []string{}, PublicIPAddresses: []string{}}
	if in := s.instances[t.instanceID]; in != nil {
		b.PrivateIPAddresses = []string{in.lanIP}
		b.PublicIPAddresses = []string{in.wanIP}
		b.InstanceName = in.name()
	}
	return b
}

func (s *Server) describeTargets(leaves map[string]leaf, now time.Time, reqID string) response {
	var p clbDescribeTargetsParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	lb, e := s.lookupLB(p.LoadBalancerId)
	if e != nil {
		return s.fail(genV3, reqID, e)
	}
	for _, id := range p.ListenerIds {
		if lb.byID[id] == nil {
			return s.fail(genV3, reqID, newErr(errListenerNotFound, "listener %s not found on %s", id, lb.id))
		}
	}
	s.lbs.settleTasks(now)
	body := clbDescribeTargetsBody{Listeners: []clbListenerBackend{}, RequestID: reqID}
	for _, l := range lb.listeners {
		switch {
		case len(p.ListenerIds) > 0 && !slices.Contains(p.ListenerIds, l.id),
			p.Protocol != nil && *p.Protocol != l.protocol,
			p.Port != nil && int(*p.Port) != l.port:
			continue
		}
		out := clbListenerBackend{ListenerID: l.id, Protocol: l.protocol, Port: l.port}
		for _, loc := range l.locations {
			targets := []clbBackend{}
			for _, t := range loc.targets {
				targets = append(targets, s.backend(t))
			}
			if loc.id == "" {
				out.Targets = targets
			} else {
				out.Rules = append(out.Rules, clbRuleTargets{LocationID: loc.id, Domain: loc.domain, URL: loc.url, Targets: targets})
			}
		}
		body.Listeners = append(body.Listeners, out)
	}
	return jsonResponse("", v3Envelope{Response: body})
}

func (s *Server) describeTargetHealth(leaves map[string]leaf, now time.Time, reqID string) response {
	var p clbTargetHealthParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	if len(p.LoadBalancerIds) == 0 {
		return s.fail(genV3, reqID, newErr(errMissingParameter, "missing LoadBalancerIds"))
	}
	body := clbTargetHealthBody{LoadBalancers: []clbLoadBalancerHealth{}, RequestID: reqID}
	for _, id := range p.LoadBalancerIds {
		lb, e := s.lookupLB(&id)
		if e != nil {
			return s.fail(genV3, reqID, e)
		}
		out := clbLoadBalancerHealth{LoadBalancerID: lb.id, Listeners: []clbListenerHealth{}}
		for _, l := range lb.listeners {
			lh := clbListenerHealth{ListenerID: l.id, Protocol: l.protocol, Port: l.port, Rules: []clbRuleHealth{}}
			for _, loc := range l.locations {
				rh := clbRuleHealth{LocationID: loc.id, Domain: loc.domain, URL: loc.url, Targets: []clbTargetHealth{}}
				for _, t := range loc.targets {
					th := clbTargetHealth{Port: t.port, TargetID: t.instanceID, HealthStatusDetail: "Unknown"}
					if in := s.instances[t.instanceID]; in != nil {
						s.settle(in, now)
						th.IP = in.lanIP
						th.HealthStatus = in.up() && in.healthy
						th.HealthStatusDetail = "Dead"
						if th.HealthStatus {
							th.HealthStatusDetail = "Alive"
						}
					}
					rh.Targets = append(rh.Targets, th)
				}
				lh.Rules = append(lh.Rules, rh)
			}
			out.Listeners = append(out.Listeners, lh)
		}
		body.LoadBalancers = append(body.LoadBalancers, out)
	}
	return jsonResponse("", v3Envelope{Response: body})
}

// modifyWeights validates rules against lb all or nothing and, when every
// one passes, queues them as one task named reqID.
func (s *Server) modifyWeights(action string, lbID *string, rules []clbWeightRule, arrival, now time.Time, reqID string) response {
	lb, e := s.lookupLB(lbID)
	if e != nil {
		return s.fail(genV3, reqID, e)
	}
	if len(rules) == 0 {
		return s.fail(genV3, reqID, newErr(errMissingParameter, "missing ModifyList"))
	}
	var changes []weightSet
	n := 0
	for i, r := range rules {
		if r.ListenerId == nil || *r.ListenerId == "" {
			return s.fail(genV3, reqID, newErr(errMissingParameter, "rule %d: missing ListenerId", i))
		}
		l := lb.byID[*r.ListenerId]
		if l == nil {
			return s.fail(genV3, reqID, newErr(errListenerNotFound, "listener %s not found on %s", *r.ListenerId, lb.id))
		}
		loc, e := l.location(r)
		if e != nil {
			return s.fail(genV3, reqID, e)
		}
		if len(r.Targets) == 0 {
			return s.fail(genV3, reqID, newErr(errMissingParameter, "rule %d: missing Targets", i))
		}
		for j, tp := range r.Targets {
			if n++; n > maxWeightTargets {
				return s.fail(genV3, reqID, newErr(errLength, "at most %d targets per call", maxWeightTargets))
			}
			if tp.InstanceId == nil || tp.Port == nil {
				return s.fail(genV3, reqID, newErr(errMissingParameter, "rule %d target %d: InstanceId and Port are required", i, j))
			}
			if tp.Type != nil && *tp.Type != "CVM" {
				return s.fail(genV3, reqID, newErr(errInvalidParamValue, "rule %d target %d: Type %q is not simulated (CVM only)", i, j, *tp.Type))
			}
			t := loc.find(*tp.InstanceId, int(*tp.Port))
			if t == nil {
				// [U]: the real message for an unbound target is not documented.
				return s.fail(genV3, reqID, newErr(errInvalidParameter, "target %s:%d is not bound to %s/%s%s", *tp.InstanceId, *tp.Port, lb.id, l.id, locSuffix(loc)))
			}
			// The target's own weight wins over the rule's; neither means 10.
			w := int64(WeightDefault)
			if tp.Weight != nil {
				w = *tp.Weight
			} else if r.Weight != nil {
				w = *r.Weight
			}
			if w < 0 || w > 100 {
				return s.fail(genV3, reqID, newErr(errInvalidParamValue, "Weight %d is not in [0, 100]", w))
			}
			changes = append(changes, weightSet{l: l, loc: loc, t: t, weight: int(w)})
		}
	}
	s.lbs.settleTasks(now)
	if s.faults.LoadBalancerBusy && now.Before(lb.busyUntil) {
		return s.fail(genV3, reqID, newErr(errResourceInOperating, "load balancer %s is running another task", lb.id))
	}
	task := &clbTask{id: reqID, lb: lb.id, action: action, requested: arrival, end: now.Add(s.cfg.TaskDuration), changes: changes}
	lb.busyUntil = task.end
	s.lbs.tasks[reqID] = task
	s.lbs.queue = append(s.lbs.queue, task)
	s.lbs.settleTasks(now) // a zero TaskDuration applies at once
	return jsonResponse("", v3Envelope{Response: v3ResetBody{RequestID: reqID}})
}

func locSuffix(loc *lbLocation) string {
	if loc.id == "" {
		return ""
	}
	return "/" + loc.id
}

// location finds the rule a weight change names: none on a layer-4
// listener, LocationId or Domain+Url on a layer-7 one.
func (l *lbListener) location(r clbWeightRule) (*lbLocation, *apiErr) {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	locID, domain, url := str(r.LocationId), str(r.Domain), str(r.Url)
	if !layer7(l.protocol) {
		if locID != "" || domain != "" || url != "" {
			return nil, newErr(errLocationNotFound, "listener %s is layer 4 and has no forwarding rules", l.id)
		}
		return l.locations[0], nil
	}
	for _, loc := range l.locations {
		if locID != "" && loc.id == locID || locID == "" && domain != "" && loc.domain == domain && loc.url == url {
			return loc, nil
		}
	}
	if locID == "" && domain == "" {
		return nil, newErr(errLocationNotFound, "listener %s is layer 7: give LocationId or Domain and Url", l.id)
	}
	return nil, newErr(errLocationNotFound, "no forwarding rule %s%s%s on listener %s", locID, domain, url, l.id)
}

func (s *Server) batchModifyTargetWeight(leaves map[string]leaf, arrival, now time.Time, reqID string) response {
	var p clbBatchParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	return s.modifyWeights("BatchModifyTargetWeight", p.LoadBalancerId, p.ModifyList, arrival, now, reqID)
}

func (s *Server) modifyTargetWeight(leaves map[string]leaf, arrival, now time.Time, reqID string) response {
	var p clbModifyParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	rule := clbWeightRule{ListenerId: p.ListenerId, LocationId: p.LocationId, Domain: p.Domain, Url: p.Url, Targets: p.Targets, Weight: p.Weight}
	if p.ListenerId == nil {
		return s.fail(genV3, reqID, newErr(errMissingParameter, "missing ListenerId"))
	}
	return s.modifyWeights("ModifyTargetWeight", p.LoadBalancerId, []clbWeightRule{rule}, arrival, now, reqID)
}

func (s *Server) describeTaskStatus(leaves map[string]leaf, now time.Time, reqID string) response {
	var p clbTaskStatusParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	if p.TaskId == nil || *p.TaskId == "" {
		return s.fail(genV3, reqID, newErr(errMissingParameter, "missing TaskId"))
	}
	task := s.lbs.tasks[*p.TaskId]
	if task == nil {
		// [U]: the code for an unknown task is not documented.
		return s.fail(genV3, reqID, newErr(errInvalidParameter, "task %s not found", *p.TaskId))
	}
	s.lbs.settleTasks(now)
	status := 0 // succeeded
	if now.Before(task.end) {
		status = 2 // running
	}
	return jsonResponse("", v3Envelope{Response: clbTaskStatusBody{Status: status, LoadBalancerIDs: []string{task.lb}, RequestID: reqID}})
}
