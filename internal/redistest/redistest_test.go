package redistest_test

import (
	"context"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestTestsLeaveNothingBehind: a test's keys, asynq queues included, are
// gone from a shared Redis when it ends (issue 15: the suite left ~5,000
// keys in the Redis it was given).
func TestTestsLeaveNothingBehind(t *testing.T) {
	var r *redistest.Redis
	t.Run("user", func(t *testing.T) {
		r = redistest.New(t)
		ns := r.Prefix[:len(r.Prefix)-1]
		if err := r.Client.Set(t.Context(), r.Prefix+"k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		c := asynq.NewClient(r.ConnOpt())
		defer c.Close()
		if _, err := c.Enqueue(asynq.NewTask("x", nil), asynq.Queue(ns)); err != nil {
			t.Fatal(err)
		}
	})
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	ctx := context.Background()
	if !r.Real() {
		// The in-process server is gone with its test.
		if err := c.Ping(ctx).Err(); err == nil {
			t.Fatal("the test's miniredis still answers after the test")
		}
		return
	}
	ns := r.Prefix[:len(r.Prefix)-1]
	for _, pattern := range []string{r.Prefix + "*", "asynq:{" + ns + "*"} {
		if keys, err := c.Keys(ctx, pattern).Result(); err != nil || len(keys) > 0 {
			t.Errorf("keys %s left: %v (%v)", pattern, keys, err)
		}
	}
	if ok, _ := c.SIsMember(ctx, "asynq:queues", ns).Result(); ok {
		t.Errorf("queue %s still registered", ns)
	}
}
