package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/notify"
)

// instant is an After that returns at once and records the waits asked for.
type instant struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (i *instant) After(d time.Duration) <-chan time.Time {
	i.mu.Lock()
	i.waits = append(i.waits, d)
	i.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch
}

// receiver is a webhook whose answers the test scripts.
type receiver struct {
	srv *httptest.Server
	// arrived gets each request's event as it arrives, before answer.
	arrived chan notify.Event
	// answer returns the status of the n-th request (1-based).
	answer func(n int) int
	calls  atomic.Int64
	mu     sync.Mutex
	got    []notify.Event // events answered 2xx
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	t.Helper()
	rv := &receiver{arrived: make(chan notify.Event, 100), answer: answer}
	rv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e notify.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		rv.arrived <- e
		code := rv.answer(int(rv.calls.Add(1)))
		if code/100 == 2 {
			rv.mu.Lock()
			rv.got = append(rv.got, e)
			rv.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rv.srv.Close)
	return rv
}

func (rv *receiver) delivered() []notify.Event {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]notify.Event(nil), rv.got...)
}

func ok(int) int { return http.StatusNoContent }

func closeSender(t *testing.T, s *notify.Sender) {
	t.Helper()
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func wantLost(t *testing.T, s *notify.Sender, want map[string]int64) {
	t.Helper()
	got := s.LostCounts()
	for _, r := range notify.LostReasons {
		if got[r] != want[r] {
			t.Errorf("lost[%s] = %d; want %d (all: %v)", r, got[r], want[r], got)
		}
	}
}

// TestSendDoesNotWaitForReceiver: Send returns while the receiver still
// holds the request; the event is delivered once the receiver answers.
func TestSendDoesNotWaitForReceiver(t *testing.T) {
	release := make(chan struct{})
	rv := newReceiver(t, func(int) int { <-release; return http.StatusOK })
	s := notify.NewSender(notify.SenderConfig{})
	returned := make(chan bool)
	go func() { returned <- s.Send(rv.srv.URL, notify.Event{Kind: notify.WavePassed, Rollout: "r1"}) }()
	select {
	case queued := <-returned:
		if !queued {
			t.Fatal("Send did not queue the event")
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Send waited for the receiver to answer")
	}
	// The receiver has the request and holds it: Send returned first.
	if e := <-rv.arrived; e.Rollout != "r1" {
		t.Errorf("receiver got %+v", e)
	}
	if len(rv.delivered()) != 0 || s.SentCount() != 0 {
		t.Fatal("delivered before the receiver was released")
	}
	close(release)
	closeSender(t, s)
	if got := rv.delivered(); len(got) != 1 || got[0].Kind != notify.WavePassed {
		t.Errorf("delivered %+v; want one wave_passed", got)
	}
	if s.SentCount() != 1 {
		t.Errorf("sent = %d; want 1", s.SentCount())
	}
	wantLost(t, s, nil)
}

// TestRetries: which answers are retried, how often, with what backoff,
// and how the event ends.
func TestRetries(t *testing.T) {
	for _, c := range []struct {
		name    string
		answers []int // per attempt; the last repeats
		calls   int64
		sent    int64
		lost    map[string]int64
		waits   []time.Duration
	}{
		{"503 twice then 200", []int{503, 503, 200}, 3, 1, nil, []time.Duration{10 * time.Second, 20 * time.Second}},
		{"429 then 204", []int{429, 204}, 2, 1, nil, []time.Duration{10 * time.Second}},
		{"500 always", []int{500}, 3, 0, map[string]int64{notify.LostRetries: 1}, []time.Duration{10 * time.Second, 20 * time.Second}},
		{"400 is not retried", []int{400}, 1, 0, map[string]int64{notify.LostRejected: 1}, nil},
		{"404 is not retried", []int{404}, 1, 0, map[string]int64{notify.LostRejected: 1}, nil},
		{"410 after a 502", []int{502, 410}, 2, 0, map[string]int64{notify.LostRejected: 1}, []time.Duration{10 * time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rv := newReceiver(t, func(n int) int { return c.answers[min(n, len(c.answers))-1] })
			clk := &instant{}
			s := notify.NewSender(notify.SenderConfig{After: clk.After})
			s.Send(rv.srv.URL, notify.Event{Kind: notify.RolloutCompleted, Rollout: "r1"})
			closeSender(t, s)
			if got := rv.calls.Load(); got != c.calls {
				t.Errorf("posted %d times; want %d", got, c.calls)
			}
			if got := int64(len(rv.delivered())); got != c.sent || s.SentCount() != c.sent {
				t.Errorf("delivered %d, counted sent %d; want %d", got, s.SentCount(), c.sent)
			}
			wantLost(t, s, c.lost)
			if len(clk.waits) != len(c.waits) {
				t.Fatalf("waits %v; want %v", clk.waits, c.waits)
			}
			for i := range c.waits {
				if clk.waits[i] != c.waits[i] {
					t.Errorf("waits %v; want %v", clk.waits, c.waits)
				}
			}
		})
	}
}

// TestNetworkErrorRetried: a receiver that cannot be reached is tried every
// attempt, then the event is counted lost; the log names only the host of
// a URL whose path holds a token.
func TestNetworkErrorRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hooks/secret-token-123"
	srv.Close() // nothing listens any more
	var logs bytes.Buffer
	var mu sync.Mutex
	clk := &instant{}
	s := notify.NewSender(notify.SenderConfig{After: clk.After, Attempts: 4,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	s.Send(url, notify.Event{Kind: notify.RolloutPaused, Rollout: "r1"})
	closeSender(t, s)
	wantLost(t, s, map[string]int64{notify.LostRetries: 1})
	if len(clk.waits) != 3 {
		t.Errorf("waits %v; want three retries", clk.waits)
	}
	mu.Lock()
	defer mu.Unlock()
	out := logs.String()
	if strings.Contains(out, "secret-token-123") {
		t.Errorf("log holds the webhook's token:\n%s", out)
	}
	if !strings.Contains(out, "webhook lost") || !strings.Contains(out, "retries_exhausted") {
		t.Errorf("no loss logged:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestQueueFull: with one worker held by the receiver and the queue full,
// further events are dropped and counted; the queued ones still arrive.
func TestQueueFull(t *testing.T) {
	release := make(chan struct{})
	rv := newReceiver(t, func(int) int { <-release; return http.StatusOK })
	s := notify.NewSender(notify.SenderConfig{Queue: 2, Workers: 1})
	if !s.Send(rv.srv.URL, notify.Event{Rollout: "in-flight"}) {
		t.Fatal("first event not queued")
	}
	<-rv.arrived // the worker took it: the queue is empty again
	for _, id := range []string{"q1", "q2"} {
		if !s.Send(rv.srv.URL, notify.Event{Rollout: id}) {
			t.Fatalf("%s not queued", id)
		}
	}
	for _, id := range []string{"x1", "x2", "x3"} {
		if s.Send(rv.srv.URL, notify.Event{Rollout: id}) {
			t.Errorf("%s queued beyond the queue's size", id)
		}
	}
	wantLost(t, s, map[string]int64{notify.LostQueueFull: 3})
	close(release)
	closeSender(t, s)
	var got []string
	for _, e := range rv.delivered() {
		got = append(got, e.Rollout)
	}
	if strings.Join(got, ",") != "in-flight,q1,q2" {
		t.Errorf("delivered %v; want in-flight, q1, q2", got)
	}
	if s.SentCount() != 3 {
		t.Errorf("sent = %d; want 3", s.SentCount())
	}
}

// TestCloseDeliversQueued: Close waits for the queued events.
func TestCloseDeliversQueued(t *testing.T) {
	release := make(chan struct{})
	rv := newReceiver(t, func(int) int { <-release; return http.StatusOK })
	s := notify.NewSender(notify.SenderConfig{Workers: 2})
	const n = 10
	for i := range n {
		s.Send(rv.srv.URL, notify.Event{Wave: i})
	}
	closed := make(chan error)
	go func() { closed <- s.Close(context.Background()) }()
	<-rv.arrived // Close is waiting while a post is held
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with events undelivered", err)
	default:
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := len(rv.delivered()); got != n || s.SentCount() != n {
		t.Errorf("delivered %d, sent %d; want %d", got, s.SentCount(), n)
	}
	if s.Send(rv.srv.URL, notify.Event{}) {
		t.Error("Send after Close queued an event")
	}
	wantLost(t, s, map[string]int64{notify.LostClosed: 1})
}

// TestCloseDeadline: when Close's context ends, the post in progress is
// cancelled and everything left is counted lost.
func TestCloseDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rv := newReceiver(t, func(int) int { <-release; return http.StatusOK })
	s := notify.NewSender(notify.SenderConfig{Workers: 1})
	for i := range 5 {
		s.Send(rv.srv.URL, notify.Event{Wave: i})
	}
	<-rv.arrived
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v; want the context's error", err)
	}
	if s.SentCount() != 0 {
		t.Errorf("sent = %d; want 0", s.SentCount())
	}
	wantLost(t, s, map[string]int64{notify.LostClosed: 5})
}

// TestCloseSkipsBackoff: Close makes the attempts left at once instead of
// waiting out their backoff (a process should not linger 30 s for a
// receiver that refuses connections), and still delivers.
func TestCloseSkipsBackoff(t *testing.T) {
	rv := newReceiver(t, func(n int) int { return []int{503, 503, 200}[n-1] })
	never := func(time.Duration) <-chan time.Time { return nil }
	s := notify.NewSender(notify.SenderConfig{After: never})
	s.Send(rv.srv.URL, notify.Event{})
	<-rv.arrived // first attempt made; the retry's backoff never ends
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close = %v; want the attempts left made at once", err)
	}
	if rv.calls.Load() != 3 || s.SentCount() != 1 {
		t.Errorf("posted %d times, sent %d; want 3 and 1", rv.calls.Load(), s.SentCount())
	}
	wantLost(t, s, nil)
}

// TestRetryable classifies errors.
func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&notify.StatusError{Code: 500}, true},
		{&notify.StatusError{Code: 503}, true},
		{&notify.StatusError{Code: 429}, true},
		{&notify.StatusError{Code: 400}, false},
		{&notify.StatusError{Code: 401}, false},
		{&notify.StatusError{Code: 302}, false},
		{errors.New("connection refused"), true},
		{context.DeadlineExceeded, true},
		{nil, false},
	} {
		if got := notify.Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v; want %v", c.err, got, c.want)
		}
	}
}

// TestEventHasNoURL: an event's JSON holds only IDs, counts and words,
// never the webhook URL (whose path may hold a token).
func TestEventHasNoURL(t *testing.T) {
	b, err := json.Marshal(notify.Event{Kind: "k", Rollout: "r", Reason: "why"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"kind": true, "rollout": true, "wave": true, "state": true, "reason": true, "time": true, "succeeded": true, "failed": true, "total": true}
	for k := range m {
		if !allowed[k] {
			t.Errorf("event field %q: review it for secrets, then allow it here", k)
		}
	}
}
