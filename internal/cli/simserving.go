package cli

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/rollout"
)

// simServing fills in what a simulator needs to serve a plan's drain,
// hooks and health checks, where the operator's flags left it unset: the
// plan's load-balancer listeners (every instance a target, weight 10) and
// the port its HTTP or TCP checks address on {privateIp}. A plan without
// them leaves cfg as it is.
func simServing(cfg cvmsim.Config, plan *planner.Plan) cvmsim.Config {
	seen := map[string]bool{}
	for _, lb := range cfg.LoadBalancers {
		for _, l := range lb.Listeners {
			seen[lb.ID+"/"+l.ID] = true
		}
	}
	add := func(l rollout.Listener) {
		key := l.LoadBalancerID + "/" + l.ListenerID
		if seen[key] {
			return
		}
		seen[key] = true
		sl := cvmsim.Listener{ID: l.ListenerID, Port: l.Port, EveryInstance: true, BackendPort: l.Port}
		if l.LocationID != "" {
			sl.Rules = []cvmsim.Rule{{LocationID: l.LocationID}}
		}
		i := slices.IndexFunc(cfg.LoadBalancers, func(lb cvmsim.LoadBalancer) bool { return lb.ID == l.LoadBalancerID })
		if i < 0 {
			cfg.LoadBalancers = append(cfg.LoadBalancers, cvmsim.LoadBalancer{ID: l.LoadBalancerID})
			i = len(cfg.LoadBalancers) - 1
		}
		cfg.LoadBalancers[i].Listeners = append(cfg.LoadBalancers[i].Listeners, sl)
	}
	for _, g := range plan.Spec.Groups {
		if g.LoadBalancer != nil {
			for _, l := range g.LoadBalancer.Listeners {
				add(l)
			}
		}
		if g.Health == nil {
			continue
		}
		for _, c := range g.Health.Checks {
			switch c.Kind {
			case rollout.CheckCLB:
				if c.Listener != nil {
					add(*c.Listener)
				}
			case rollout.CheckHTTP, rollout.CheckTCP:
				if cfg.HealthPort == 0 {
					cfg.HealthPort = privateIPPort(c)
				}
			}
		}
	}
	return cfg
}

// privateIPPort is the port a check addresses on {privateIp}, 0 when it
// addresses anything else.
func privateIPPort(c rollout.Check) int {
	hostport := c.Address
	if c.Kind == rollout.CheckHTTP {
		u, err := url.Parse(strings.ReplaceAll(c.URL, "{privateIp}", "privateip"))
		if err != nil {
			return 0
		}
		hostport = strings.ReplaceAll(u.Host, "privateip", "{privateIp}")
	}
	host, port, ok := strings.Cut(hostport, ":")
	if !ok || host != "{privateIp}" {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}
