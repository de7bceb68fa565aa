package health_test

import (
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/health"
)

func ExampleExpand() {
	f := health.Facts{InstanceID: "ins-1", PrivateIP: "10.0.0.7"}
	url, _ := health.Expand("http://{privateIp}:8080/healthz?id={instanceId}", f)
	fmt.Println(url)
	_, err := health.Expand("{publicIp}:22", f)
	fmt.Println(err)
	// Output:
	// http://10.0.0.7:8080/healthz?id=ins-1
	// health: template placeholder {publicIp}: instance has no value for it
}

func ExampleTracker_Next() {
	tr := health.Tracker{HealthyThreshold: 2, Interval: 10 * time.Second, Deadline: time.Minute}
	verified := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var s health.State
	now := tr.First(verified)
	for _, v := range []health.Verdict{health.Fail, health.Pass, health.Pass} {
		var out health.Outcome
		s, out, now = tr.Next(s, health.Result{Verdict: v, Check: "tcp 10.0.0.7:22", Detail: string(v)}, now, verified)
		fmt.Println(v, "→", out, now.Format(time.TimeOnly))
	}
	// Output:
	// fail → wait 10:00:10
	// pass → wait 10:00:20
	// pass → healthy 00:00:00
}
