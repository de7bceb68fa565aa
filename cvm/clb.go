package cvm

import (
	"context"
	"strconv"
)

// MaxWeightTargets is the most targets one BatchModifyTargetWeight call
// takes; SetWeights splits longer lists.
const MaxWeightTargets = 500

// Target is one CVM backend of a CLB listener (DescribeTargets). For a
// layer-7 listener LocationID names the forwarding rule; for layer 4 it is
// empty.
type Target struct {
	ListenerID string
	LocationID string
	InstanceID string
	// Port is the backend port on the instance.
	Port int
	// Weight is the forwarding weight, 0..100; 0 sends no new traffic.
	Weight int
}

// TargetHealth is the CLB's health-check verdict on one backend
// (DescribeTargetHealth).
type TargetHealth struct {
	LoadBalancerID string
	ListenerID     string
	// LocationID is the forwarding rule of a layer-7 listener. A layer-4
	// listener reports one rule whose LocationID is, as far as is known,
	// empty; FindHealth copes with either.
	LocationID string
	// InstanceID is the cloud's TargetId, the instance ID for a CVM target.
	InstanceID string
	Port       int
	// Healthy is the cloud's HealthStatus.
	Healthy bool
	// Detail is HealthStatusDetail: "Alive", "Dead" or "Unknown" (health
	// checks off, or not yet run).
	Detail string
}

// TargetWeight is a weight to set on one backend.
type TargetWeight struct {
	ListenerID string
	// LocationID is the forwarding rule of a layer-7 listener; empty for
	// layer 4.
	LocationID string
	InstanceID string
	Port       int
	// Weight is 0..100; 0 drains the target without deregistering it.
	Weight int
}

// TaskState is the state of an asynchronous CLB task (DescribeTaskStatus).
type TaskState string

const (
	// TaskSucceeded is Status 0.
	TaskSucceeded TaskState = "succeeded"
	// TaskFailed is Status 1.
	TaskFailed TaskState = "failed"
	// TaskRunning is Status 2: poll again.
	TaskRunning TaskState = "running"
)

// clbBackend is the wire Backend of DescribeTargets.
type clbBackend struct {
	Type       string `json:"Type"`
	InstanceID string `json:"InstanceId"`
	Port       int    `json:"Port"`
	Weight     int    `json:"Weight"`
}

// Targets lists the CVM backends of load balancer lbID (DescribeTargets),
// on the listeners listenerIDs or, when that is empty, on all of them.
// Layer-4 listeners give their Targets with an empty LocationID; layer-7
// listeners give the Targets of each rule with its LocationID. Backends
// without an instance ID (ENI targets) are left out.
//
// Doc: CLB API 2018-03-17, DescribeTargets.
func (s *Serving) Targets(ctx context.Context, lbID string, listenerIDs []string) ([]Target, error) {
	const action = "DescribeTargets"
	if lbID == "" {
		return nil, invalid(V3, action, "load balancer ID is empty")
	}
	params := map[string]any{"LoadBalancerId": lbID}
	if len(listenerIDs) > 0 {
		if err := checkList(action, "listener IDs", listenerIDs, 0); err != nil {
			return nil, err
		}
		params["ListenerIds"] = listenerIDs
	}
	var out struct {
		Response struct {
			Listeners []struct {
				ListenerID string       `json:"ListenerId"`
				Targets    []clbBackend `json:"Targets"`
				Rules      []struct {
					LocationID string       `json:"LocationId"`
					Targets    []clbBackend `json:"Targets"`
				} `json:"Rules"`
			} `json:"Listeners"`
		} `json:"Response"`
	}
	if _, err := s.do(ctx, serviceCLB, action, params, &out); err != nil {
		return nil, err
	}
	var res []Target
	add := func(listener, location string, bs []clbBackend) {
		for _, b := range bs {
			if b.InstanceID == "" {
				continue
			}
			res = append(res, Target{ListenerID: listener, LocationID: location, InstanceID: b.InstanceID, Port: b.Port, Weight: b.Weight})
		}
	}
	for _, l := range out.Response.Listeners {
		add(l.ListenerID, "", l.Targets)
		for _, rule := range l.Rules {
			add(l.ListenerID, rule.LocationID, rule.Targets)
		}
	}
	return res, nil
}

// TargetHealth reads the health-check verdicts of every backend of the
// load balancers lbIDs (DescribeTargetHealth), one per listener, rule,
// target and port.
//
// Doc: https://www.tencentcloud.com/document/api/214/33825
func (s *Serving) TargetHealth(ctx context.Context, lbIDs []string) ([]TargetHealth, error) {
	const action = "DescribeTargetHealth"
	if err := checkList(action, "load balancer IDs", lbIDs, 0); err != nil {
		return nil, err
	}
	var out struct {
		Response struct {
			LoadBalancers []struct {
				LoadBalancerID string `json:"LoadBalancerId"`
				Listeners      []struct {
					ListenerID string `json:"ListenerId"`
					Rules      []struct {
						LocationID string `json:"LocationId"`
						Targets    []struct {
							Port               int    `json:"Port"`
							HealthStatus       bool   `json:"HealthStatus"`
							TargetID           string `json:"TargetId"`
							HealthStatusDetail string `json:"HealthStatusDetail"`
						} `json:"Targets"`
					} `json:"Rules"`
				} `json:"Listeners"`
			} `json:"LoadBalancers"`
		} `json:"Response"`
	}
	if _, err := s.do(ctx, serviceCLB, action, map[string]any{"LoadBalancerIds": lbIDs}, &out); err != nil {
		return nil, err
	}
	var res []TargetHealth
	for _, lb := range out.Response.LoadBalancers {
		for _, l := range lb.Listeners {
			for _, rule := range l.Rules {
				for _, t := range rule.Targets {
					res = append(res, TargetHealth{
						LoadBalancerID: lb.LoadBalancerID, ListenerID: l.ListenerID, LocationID: rule.LocationID,
						InstanceID: t.TargetID, Port: t.Port, Healthy: t.HealthStatus, Detail: t.HealthStatusDetail,
					})
				}
			}
		}
	}
	return res, nil
}

// FindHealth returns the verdict in hs on instanceID at port on the given
// load balancer and listener. An empty locationID (a layer-4 listener)
// matches any rule, because what a layer-4 listener reports as its rule's
// LocationId is not documented; a non-empty one must match exactly.
func FindHealth(hs []TargetHealth, lbID, listenerID, locationID, instanceID string, port int) (TargetHealth, bool) {
	for _, h := range hs {
		if h.LoadBalancerID == lbID && h.ListenerID == listenerID && h.InstanceID == instanceID && h.Port == port &&
			(locationID == "" || h.LocationID == locationID) {
			return h, true
		}
	}
	return TargetHealth{}, false
}

// SetWeights sets the weights ws on load balancer lbID
// (BatchModifyTargetWeight), in calls of at most MaxWeightTargets targets,
// and returns the task ID (the call's RequestId) of each call. The change
// is asynchronous: it is done when TaskStatus reports TaskSucceeded for
// every task ID. On an error the calls before it were accepted and their
// task IDs are returned with it.
//
// Doc: CLB API 2018-03-17, BatchModifyTargetWeight.
func (s *Serving) SetWeights(ctx context.Context, lbID string, ws []TargetWeight) (taskIDs []string, err error) {
	const action = "BatchModifyTargetWeight"
	if err := checkWeights(lbID, ws); err != nil {
		return nil, err
	}
	for start := 0; start < len(ws); start += MaxWeightTargets {
		chunk := ws[start:min(start+MaxWeightTargets, len(ws))]
		var out struct {
			Response struct {
				RequestID string `json:"RequestId"`
			} `json:"Response"`
		}
		params := map[string]any{"LoadBalancerId": lbID, "ModifyList": modifyList(chunk)}
		if _, err := s.do(ctx, serviceCLB, action, params, &out); err != nil {
			return taskIDs, err
		}
		if out.Response.RequestID == "" {
			return taskIDs, malformed(action, "no RequestId to poll the task with")
		}
		taskIDs = append(taskIDs, out.Response.RequestID)
	}
	return taskIDs, nil
}

func checkWeights(lbID string, ws []TargetWeight) error {
	const action = "BatchModifyTargetWeight"
	if lbID == "" {
		return invalid(V3, action, "load balancer ID is empty")
	}
	if len(ws) == 0 {
		return invalid(V3, action, "no targets")
	}
	type key struct {
		listener, location, instance string
		port                         int
	}
	seen := make(map[key]bool, len(ws))
	for i, w := range ws {
		switch {
		case w.ListenerID == "":
			return invalid(V3, action, "target %d: listener ID is empty", i)
		case w.InstanceID == "":
			return invalid(V3, action, "target %d: instance ID is empty", i)
		case w.Port < 1 || w.Port > 65535:
			return invalid(V3, action, "target %d: port %d out of 1..65535", i, w.Port)
		case w.Weight < 0 || w.Weight > 100:
			return invalid(V3, action, "target %d: weight %d out of 0..100", i, w.Weight)
		}
		k := key{w.ListenerID, w.LocationID, w.InstanceID, w.Port}
		if seen[k] {
			return invalid(V3, action, "target %d: %s port %d on %s appears twice", i, w.InstanceID, w.Port, w.ListenerID+"/"+w.LocationID)
		}
		seen[k] = true
	}
	return nil
}

// modifyList groups ws by listener and rule, in order of first appearance.
func modifyList(ws []TargetWeight) []map[string]any {
	type rule struct{ listener, location string }
	var order []rule
	targets := map[rule][]map[string]any{}
	for _, w := range ws {
		r := rule{w.ListenerID, w.LocationID}
		if _, ok := targets[r]; !ok {
			order = append(order, r)
		}
		targets[r] = append(targets[r], map[string]any{"InstanceId": w.InstanceID, "Port": w.Port, "Weight": w.Weight})
	}
	list := make([]map[string]any, 0, len(order))
	for _, r := range order {
		m := map[string]any{"ListenerId": r.listener, "Targets": targets[r]}
		if r.location != "" {
			m["LocationId"] = r.location
		}
		list = append(list, m)
	}
	return list
}

// TaskStatus reads the state of an asynchronous CLB task
// (DescribeTaskStatus), such as the task ID SetWeights returned. A status
// this client does not know is a CodeMalformedResponse error.
//
// Doc: CLB API 2018-03-17, DescribeTaskStatus.
func (s *Serving) TaskStatus(ctx context.Context, taskID string) (TaskState, error) {
	const action = "DescribeTaskStatus"
	if taskID == "" {
		return "", invalid(V3, action, "task ID is empty")
	}
	var out struct {
		Response struct {
			Status *int `json:"Status"`
		} `json:"Response"`
	}
	if _, err := s.do(ctx, serviceCLB, action, map[string]any{"TaskId": taskID}, &out); err != nil {
		return "", err
	}
	if out.Response.Status == nil {
		return "", malformed(action, "no Status in the answer")
	}
	switch *out.Response.Status {
	case 0:
		return TaskSucceeded, nil
	case 1:
		return TaskFailed, nil
	case 2:
		return TaskRunning, nil
	}
	return "", malformed(action, "unknown Status %s", strconv.Itoa(*out.Response.Status))
}
