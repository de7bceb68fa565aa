package tasks

import (
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypePrune deletes the finished rollouts older than the workers'
// retention (ledger.Prune). One runs per PruneEvery in a namespace, however
// many workers there are: each asks for the prune of the current period
// when it starts, and each prune asks for the next one.
const TypePrune = "fleetreset:prune"

// PruneEvery is the period of the retention prune.
const PruneEvery = time.Hour

// PrunePayload is the payload of TypePrune.
type PrunePayload struct {
	// At is the start of the prune's period (Unix seconds).
	At int64 `json:"at"`
}

// Validate reports a payload that no handler can act on.
func (p PrunePayload) Validate() error {
	if p.At <= 0 {
		return errors.New("tasks: prune payload needs a period")
	}
	return nil
}

// PrunePeriod is the start of the prune period that t falls in.
func PrunePeriod(t time.Time) time.Time { return t.Truncate(PruneEvery) }

// NewPrune returns the prune of the period starting at period, to run after
// delay. Its ID names the period and it is retained for two periods, so
// the prune of one period is enqueued once whoever asks, and runs once.
func NewPrune(q Queues, period time.Time, delay time.Duration) (*asynq.Task, error) {
	p := PrunePayload{At: period.Unix()}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return newTask(TypePrune, p,
		asynq.Queue(q.Control),
		asynq.TaskID(fmt.Sprintf("prune:%d", p.At)),
		asynq.Retention(2*PruneEvery),
		asynq.MaxRetry(5),
		// Deleting costs about one Redis call per 500 keys: minutes at most.
		asynq.Timeout(30*time.Minute),
		asynq.ProcessIn(max(delay, 0)),
	)
}
