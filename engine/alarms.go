package engine

import (
	"context"
	"time"

	"github.com/fleetreset/fleetreset/alarm"
	"github.com/fleetreset/fleetreset/rollout"
)

// alarmInterval is how often alarms are read while a wave soaks when the
// plan does not say.
const alarmInterval = 30 * time.Second

// stopOnAlarm reads the rollout's stopWhen alarms (before a wave starts,
// and at each check while a wave soaks) and stops the rollout as OnBreach
// says when one fires, or when one cannot be read and OnError is pause.
// It reports whether it stopped the rollout.
func (c *Engine) stopOnAlarm(ctx context.Context, spec rollout.Spec, wave int, ad Adapter) (bool, error) {
	if spec.StopWhen == nil || ad.Alarms == nil {
		return false, nil
	}
	st := ad.Alarms(ctx, *spec.StopWhen)
	stop, reason := alarm.Decide(st, *spec.StopWhen)
	if !stop {
		if len(st.Errors) > 0 {
			c.log.Warn("alarm could not be read; ignored as the plan says", "rollout", spec.ID, "errors", st.Errors)
		}
		return false, nil
	}
	if len(st.Firing) == 0 {
		// Only unreadable alarms: pause, whatever OnBreach says; nothing
		// proves the new image wrong, so nothing is aborted or rolled back.
		return true, c.PauseFatal(ctx, spec, wave, reason)
	}
	return true, c.breach(ctx, spec, wave, reason)
}

// alarmCheckEvery is the spacing of alarm checks during a soak: the
// advance task comes back this often until the soak is over.
func alarmCheckEvery(spec rollout.Spec) time.Duration {
	if spec.StopWhen == nil {
		return 0
	}
	if spec.StopWhen.Interval > 0 {
		return spec.StopWhen.Interval
	}
	return alarmInterval
}
