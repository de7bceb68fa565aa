package cvm_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
)

// target is what the conformance suite runs against: the simulator, or
// (build tag live) the real API.
type target struct {
	// Config builds API; the suite derives variants from it (bad
	// credentials, short timeouts).
	Config cvm.Config
	API    cvm.API
	// InstanceID is an instance the suite may reset; Image is the image
	// to reinstall it with ("" keeps its image).
	InstanceID string
	Image      string
	// Password, if set, is sent with the reset.
	Password cvm.Secret

	// Sim and Advance are set for the simulator only: the suite injects
	// faults through Sim and moves simulated time with Advance instead of
	// waiting. ResetDuration is how long the simulator's reinstall takes.
	Sim           *cvmsim.Server
	Advance       func(time.Duration)
	ResetDuration time.Duration

	// Poll is how often the live suite polls DescribeInstances while a
	// reset runs; Timeout bounds that wait.
	Poll, Timeout time.Duration
}

// TestConformance runs the suite against cvmsim, once per API generation.
func TestConformance(t *testing.T) {
	for _, gen := range []cvm.Generation{cvm.V2, cvm.V3} {
		t.Run(string(gen), func(t *testing.T) {
			t.Parallel()
			runConformance(t, func(t *testing.T) *target { return simTarget(t, gen) }, true)
		})
	}
}

// simResetDuration is how long a simulated reinstall takes in simulated
// time; the suite advances the clock past it instead of waiting.
const simResetDuration = 30 * time.Second

// simTarget starts a fresh simulator (own clock, instances, faults) behind
// httptest and a real client for gen pointed at it.
func simTarget(t *testing.T, gen cvm.Generation) *target {
	t.Helper()
	// The client stamps requests with the wall clock; the simulator's
	// clock starts there too and only moves forward by small steps, well
	// inside its replay window.
	clk := newFakeClock(time.Now())
	sim := cvmsim.New(cvmsim.Config{
		Clock:         clk,
		ResetDuration: simResetDuration,
		// No rate limits unless a case asks for them: the fake clock
		// stands still, so every call would share one second.
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1},
	})
	sim.AddInstances(
		cvmsim.Instance{ID: "ins-conf0001", Zone: "ap-guangzhou-3", ImageID: cvmsim.ImageLinuxOld, OS: cvmsim.OSLinux, State: cvmsim.StateRunning},
		cvmsim.Instance{ID: "ins-conf0002", Zone: "ap-guangzhou-4", ImageID: cvmsim.ImageLinuxOld, OS: cvmsim.OSLinux, State: cvmsim.StateStopped},
	)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	// Runs before srv.Close: free handlers still waiting on simulated
	// latency, or Close would wait for them forever.
	t.Cleanup(clk.Stop)
	cfg := cvm.Config{
		Generation:  gen,
		Endpoint:    srv.URL,
		Region:      cvmsim.RegionDefault,
		Credentials: cvm.Credentials{SecretID: cvmsim.SecretIDDefault, SecretKey: cvmsim.SecretKeyDefault},
	}
	api, err := cvm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever a case did, no password or key ever went into a URL.
		if n := sim.Stats().SecretInURL; n != 0 {
			t.Errorf("simulator saw %d requests with a secret in the URL", n)
		}
	})
	return &target{
		Config: cfg, API: api, InstanceID: "ins-conf0001", Image: cvmsim.ImageLinuxNew, Password: "Fl33t-Reset!",
		Sim: sim, Advance: clk.Advance, ResetDuration: simResetDuration,
	}
}

// runConformance is the suite. setup returns a fresh target per case;
// withFaults adds the cases that inject faults, which need a simulator.
func runConformance(t *testing.T, setup func(*testing.T) *target, withFaults bool) {
	ctx := context.Background()

	t.Run("reset_describe_round_trip", func(t *testing.T) {
		tg := setup(t)
		before := describeOne(t, tg.API, tg.InstanceID)
		want := cmpOr(tg.Image, before.ImageID)
		reqID, err := tg.API.ResetInstance(ctx, cvm.ResetRequest{InstanceID: tg.InstanceID, ImageID: tg.Image, Password: tg.Password})
		if err != nil {
			t.Fatalf("ResetInstance: %v", err)
		}
		if tg.API.Generation() == cvm.V3 && reqID == "" {
			t.Errorf("ResetInstance returned no RequestId")
		}

		// The reset is visible as running.
		running := awaitInstance(t, tg, tg.InstanceID, "reset running", func(in cvm.Instance) bool { return in.Resetting() })
		checkOperation(t, tg, running, reqID, "OPERATING")

		// A second reset while it runs is refused, and worth retrying.
		_, err = tg.API.ResetInstance(ctx, cvm.ResetRequest{InstanceID: tg.InstanceID, ImageID: tg.Image, Password: tg.Password})
		expectClass(t, err, cvm.Retryable, false)

		// Then it completes on the new image, in its old state.
		if tg.Advance != nil {
			tg.Advance(tg.ResetDuration + time.Second)
		}
		done := awaitInstance(t, tg, tg.InstanceID, "reset finished", func(in cvm.Instance) bool { return !in.Resetting() })
		checkOperation(t, tg, done, reqID, "SUCCESS")
		if done.ImageID != want {
			t.Errorf("after reset ImageID = %q; want %q", done.ImageID, want)
		}
		if done.State != before.State {
			t.Errorf("after reset State = %q; want %q as before", done.State, before.State)
		}
		if tg.Sim != nil {
			if n := tg.Sim.Stats().AcceptedResets[tg.InstanceID]; n != 1 {
				t.Errorf("simulator accepted %d resets; want 1", n)
			}
		}
	})

	t.Run("unknown_instance_is_permanent", func(t *testing.T) {
		tg := setup(t)
		_, err := tg.API.ResetInstance(ctx, cvm.ResetRequest{InstanceID: "ins-00000000"})
		expectCode(t, err, "InvalidInstanceId.NotFound")
		expectClass(t, err, cvm.Permanent, false)
		_, err = tg.API.ResetInstance(ctx, cvm.ResetRequest{InstanceID: "not-an-id"})
		expectClass(t, err, cvm.Permanent, false)
	})

	t.Run("bad_credentials_are_fatal", func(t *testing.T) {
		tg := setup(t)
		for name, creds := range map[string]cvm.Credentials{
			"wrong_key": {SecretID: tg.Config.Credentials.SecretID, SecretKey: "definitely-not-the-key"},
			"wrong_id":  {SecretID: "AKIDdoesnotexist00000000000000000000", SecretKey: "definitely-not-the-key"},
		} {
			t.Run(name, func(t *testing.T) {
				cfg := tg.Config
				cfg.Credentials = creds
				api, err := cvm.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				_, err = api.ResetInstance(ctx, cvm.ResetRequest{InstanceID: tg.InstanceID})
				expectClass(t, err, cvm.Fatal, false)
				_, err = api.DescribeInstances(ctx, []string{tg.InstanceID})
				expectClass(t, err, cvm.Fatal, false)
			})
		}
		if tg.Sim != nil && tg.Sim.Stats().AcceptedResets[tg.InstanceID] != 0 {
			t.Errorf("a reset with bad credentials was accepted")
		}
	})

	t.Run("describe_in_batches_of_100", func(t *testing.T) {
		tg := setup(t)
		ids := []string{tg.InstanceID}
		if tg.Sim != nil {
			fleet := cvmsim.GenerateSeed(250, 42)
			tg.Sim.AddInstances(fleet...)
			for _, in := range fleet {
				ids = append(ids, in.ID)
			}
		}
		// Well-formed IDs the cloud does not know are simply absent.
		unknown := []string{"ins-zz000001", "ins-zz000002"}
		all := append(slices.Clone(ids), unknown...)
		seen := map[string]bool{}
		calls := 0
		for batch := range slices.Chunk(all, cvm.MaxDescribeIDs) {
			got, err := tg.API.DescribeInstances(ctx, batch)
			if err != nil {
				t.Fatalf("DescribeInstances(%d ids): %v", len(batch), err)
			}
			calls++
			for _, in := range got {
				if seen[in.InstanceID] {
					t.Errorf("instance %s returned twice", in.InstanceID)
				}
				seen[in.InstanceID] = true
				if in.Zone == "" || in.ImageID == "" || in.State == "" {
					t.Errorf("instance %+v lacks zone, image or state", in)
				}
			}
		}
		for _, id := range ids {
			if !seen[id] {
				t.Errorf("instance %s missing from DescribeInstances", id)
			}
		}
		for _, id := range unknown {
			if seen[id] {
				t.Errorf("unknown instance %s returned", id)
			}
		}
		if want := (len(all) + cvm.MaxDescribeIDs - 1) / cvm.MaxDescribeIDs; calls != want {
			t.Errorf("%d describe calls; want %d", calls, want)
		}
		// One more than a batch is refused before sending.
		_, err := tg.API.DescribeInstances(ctx, make([]string, cvm.MaxDescribeIDs+1))
		if !errors.Is(err, cvm.ErrInvalidRequest) {
			t.Errorf("DescribeInstances(101 ids) = %v; want ErrInvalidRequest", err)
		}
	})

	// The cases below inject faults and need the simulator.
	if !withFaults {
		t.Log("fault cases need the simulator; not run here")
		return
	}
	faults := func(t *testing.T) *target {
		t.Helper()
		tg := setup(t)
		if tg.Sim == nil {
			t.Fatal("fault cases need a simulator target")
		}
		return tg
	}
	reset := func(tg *target, id string) error {
		_, err := tg.API.ResetInstance(ctx, cvm.ResetRequest{InstanceID: id, ImageID: tg.Image, Password: tg.Password})
		return err
	}
	setFaults := func(t *testing.T, tg *target, f cvmsim.Faults) {
		t.Helper()
		if err := tg.Sim.SetFaults(f); err != nil {
			t.Fatal(err)
		}
	}
	unlimited := cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}

	t.Run("system_busy_is_retryable", func(t *testing.T) {
		tg := faults(t)
		f := unlimited
		f.SystemBusyFirst = 1
		setFaults(t, tg, f)
		err := reset(tg, tg.InstanceID)
		expectClass(t, err, cvm.Retryable, false)
		if tg.API.Generation() == cvm.V2 {
			expectCode(t, err, "OperationFail.SystemBusy")
		}
		if err := reset(tg, tg.InstanceID); err != nil {
			t.Errorf("retry after SystemBusy: %v", err)
		}
	})

	t.Run("rate_limit_is_throttled", func(t *testing.T) {
		tg := faults(t)
		setFaults(t, tg, cvmsim.Faults{ResetRateLimit: 1, DescribeRateLimit: 1})
		if err := reset(tg, "ins-conf0001"); err != nil {
			t.Fatalf("first reset: %v", err)
		}
		err := reset(tg, "ins-conf0002") // same simulated second
		expectClass(t, err, cvm.Throttled, false)
		if !cvm.IsThrottled(err) {
			t.Errorf("IsThrottled(%v) = false", err)
		}
		if _, err := tg.API.DescribeInstances(ctx, []string{"ins-conf0001"}); err != nil {
			t.Fatalf("first describe: %v", err)
		}
		_, err = tg.API.DescribeInstances(ctx, []string{"ins-conf0001"})
		expectClass(t, err, cvm.Throttled, false)
		// The next second has room again.
		tg.Advance(time.Second)
		if err := reset(tg, "ins-conf0002"); err != nil {
			t.Errorf("reset in the next second: %v", err)
		}
	})

	t.Run("insufficient_balance_is_fatal", func(t *testing.T) {
		tg := faults(t)
		f := unlimited
		f.BalanceAfter = 1
		setFaults(t, tg, f)
		if err := reset(tg, "ins-conf0001"); err != nil {
			t.Fatalf("first reset: %v", err)
		}
		err := reset(tg, "ins-conf0002")
		expectClass(t, err, cvm.Fatal, false)
	})

	t.Run("server_error_is_retryable_and_may_have_landed", func(t *testing.T) {
		tg := faults(t)
		f := unlimited
		f.ServerErrorRate = 1
		setFaults(t, tg, f)
		err := reset(tg, tg.InstanceID)
		expectClass(t, err, cvm.Retryable, true)
		var ae *cvm.APIError
		if !errors.As(err, &ae) || ae.HTTPStatus != 502 || ae.Code != "HTTPStatus.502" {
			t.Errorf("err = %v; want an APIError with HTTPStatus 502", err)
		}
	})

	t.Run("dropped_connection_after_apply", func(t *testing.T) {
		tg := faults(t)
		f := unlimited
		f.DropRate, f.DropAfterApply = 1, true
		setFaults(t, tg, f)
		err := reset(tg, tg.InstanceID)
		var te *cvm.TransportError
		if !errors.As(err, &te) {
			t.Fatalf("err = %T %v; want *cvm.TransportError", err, err)
		}
		expectClass(t, err, cvm.Retryable, true)
		// It did land: this is why MayHaveLanded exists.
		if n := tg.Sim.Stats().AcceptedResets[tg.InstanceID]; n != 1 {
			t.Errorf("simulator accepted %d resets; want 1", n)
		}
		setFaults(t, tg, unlimited)
		in := describeOne(t, tg.API, tg.InstanceID)
		if !in.Resetting() {
			t.Errorf("after a lost answer, instance %+v does not show the reset running", in)
		}
	})

	t.Run("dropped_connection_before_apply", func(t *testing.T) {
		tg := faults(t)
		f := unlimited
		f.DropRate = 1
		setFaults(t, tg, f)
		err := reset(tg, tg.InstanceID)
		var te *cvm.TransportError
		if !errors.As(err, &te) {
			t.Fatalf("err = %T %v; want *cvm.TransportError", err, err)
		}
		// The client cannot tell this from a drop after apply unless the
		// write itself failed, so Sent may be either; Classify is fixed.
		if cvm.Classify(err) != cvm.Retryable {
			t.Errorf("Classify(%v) = %v; want retryable", err, cvm.Classify(err))
		}
		if n := tg.Sim.Stats().AcceptedResets[tg.InstanceID]; n != 0 {
			t.Errorf("simulator accepted %d resets; want 0", n)
		}
	})

	t.Run("timeout_is_transport_error", func(t *testing.T) {
		tg := faults(t)
		f := unlimited
		f.Latency = time.Hour // on the simulator's clock, which we never move here
		setFaults(t, tg, f)
		cfg := tg.Config
		cfg.Timeout = 100 * time.Millisecond
		api, err := cvm.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = api.ResetInstance(ctx, cvm.ResetRequest{InstanceID: tg.InstanceID, Password: tg.Password})
		var te *cvm.TransportError
		if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %T %v; want *cvm.TransportError with DeadlineExceeded", err, err)
		}
		expectClass(t, err, cvm.Retryable, true)
	})

	t.Run("failed_reset_visible_in_describe", func(t *testing.T) {
		tg := faults(t)
		f := unlimited
		f.FailRate = 1
		setFaults(t, tg, f)
		before := describeOne(t, tg.API, tg.InstanceID)
		reqID, err := tg.API.ResetInstance(ctx, cvm.ResetRequest{InstanceID: tg.InstanceID, ImageID: tg.Image, Password: tg.Password})
		if err != nil {
			t.Fatalf("ResetInstance: %v", err)
		}
		tg.Advance(tg.ResetDuration + time.Second)
		after := describeOne(t, tg.API, tg.InstanceID)
		if after.Resetting() {
			t.Fatalf("instance %+v still resetting", after)
		}
		checkOperation(t, tg, after, reqID, "FAILED")
		if tg.API.Generation() == cvm.V3 && after.LatestOperationErrorMsg == "" {
			t.Errorf("FAILED reset has no LatestOperationErrorMsg")
		}
		// v2 has no operation state: a failed reset shows as the old image.
		if after.ImageID != before.ImageID {
			t.Errorf("after a failed reset ImageID = %q; want the old %q", after.ImageID, before.ImageID)
		}
	})
}

// describeOne returns one instance or fails the test.
func describeOne(t *testing.T, api cvm.API, id string) cvm.Instance {
	t.Helper()
	got, err := api.DescribeInstances(context.Background(), []string{id})
	if err != nil {
		t.Fatalf("DescribeInstances(%s): %v", id, err)
	}
	if len(got) != 1 || got[0].InstanceID != id {
		t.Fatalf("DescribeInstances(%s) = %+v; want that instance", id, got)
	}
	return got[0]
}

// awaitInstance returns the instance once cond holds. Against the
// simulator, time only moves when the suite advances it, so cond must hold
// on the first look; against the real API it polls until tg.Timeout.
func awaitInstance(t *testing.T, tg *target, id, what string, cond func(cvm.Instance) bool) cvm.Instance {
	t.Helper()
	in := describeOne(t, tg.API, id)
	if cond(in) || tg.Sim != nil {
		if !cond(in) {
			t.Fatalf("waiting for %s: instance is %+v", what, in)
		}
		return in
	}
	deadline := time.NewTimer(tg.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(tg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			t.Fatalf("waiting for %s: gave up after %v; instance is %+v", what, tg.Timeout, in)
		case <-tick.C:
			in = describeOne(t, tg.API, id)
			if cond(in) {
				return in
			}
		}
	}
}

// checkOperation checks the operation fields a generation can report.
func checkOperation(t *testing.T, tg *target, in cvm.Instance, reqID, state string) {
	t.Helper()
	switch tg.API.Generation() {
	case cvm.V3:
		if in.LatestOperation != "ResetInstance" || in.LatestOperationState != state || in.LatestOperationRequestID != reqID {
			t.Errorf("operation = %s/%s/%s; want ResetInstance/%s/%s",
				in.LatestOperation, in.LatestOperationState, in.LatestOperationRequestID, state, reqID)
		}
	case cvm.V2:
		// v2 reports only the status code: 14 while reinstalling.
		if resetting := state == "OPERATING"; (in.V2Status == 14) != resetting || (in.State == "RESETTING") != resetting {
			t.Errorf("v2 status = %d (%s); want reinstalling = %v", in.V2Status, in.State, resetting)
		}
	}
}

// expectClass checks Classify and MayHaveLanded of err.
func expectClass(t *testing.T, err error, class cvm.Class, landed bool) {
	t.Helper()
	if err == nil {
		t.Errorf("err = nil; want a %v error", class)
		return
	}
	if got := cvm.Classify(err); got != class {
		t.Errorf("Classify(%v) = %v; want %v", err, got, class)
	}
	if got := cvm.MayHaveLanded(err); got != landed {
		t.Errorf("MayHaveLanded(%v) = %v; want %v", err, got, landed)
	}
}

// expectCode checks the APIError code of err.
func expectCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae *cvm.APIError
	if !errors.As(err, &ae) || ae.Code != code {
		t.Errorf("err = %v; want an APIError with Code %s", err, code)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// fakeClock is a clock.Clock that moves only by Advance. Its After lets
// the simulator's Latency fault wait on simulated time.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	stopped bool
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock { return &fakeClock{now: now} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if c.stopped {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Stop fires every pending and future After at once, so no simulator
// handler outlives its test.
func (c *fakeClock) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	for _, w := range c.waiters {
		w.ch <- c.now
	}
	c.waiters = nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}
