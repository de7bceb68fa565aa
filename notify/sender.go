package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Sender defaults.
const (
	// QueueDefault is how many events may wait for delivery.
	QueueDefault = 1000
	// WorkersDefault is how many events are posted at once.
	WorkersDefault = 4
	// AttemptsDefault is how many times an event is posted at most.
	AttemptsDefault = 3
	// BackoffDefault is the wait before the first retry; each further
	// retry waits twice as long (10 s, 20 s: three attempts over about
	// 30 s, plus the posts themselves).
	BackoffDefault = 10 * time.Second
)

// Reasons an event is lost, the values of LostCounts' keys.
const (
	// LostQueueFull: the queue held Queue events already.
	LostQueueFull = "queue_full"
	// LostRejected: the webhook answered a status that retrying cannot
	// change (a 4xx other than 429, or a redirect not followed).
	LostRejected = "rejected"
	// LostRetries: every attempt met a network error, a 5xx or a 429.
	LostRetries = "retries_exhausted"
	// LostClosed: sent after Close, or still queued or being retried when
	// Close's deadline ended.
	LostClosed = "closed"
)

// LostReasons lists every reason an event is lost, so that counters can
// start at zero.
var LostReasons = []string{LostQueueFull, LostRejected, LostRetries, LostClosed}

// SenderConfig configures a Sender. The zero value is valid.
type SenderConfig struct {
	// Poster posts each attempt.
	// Defaults to a Poster with a 10 s timeout per request.
	Poster *Poster
	// Queue bounds the events waiting for delivery.
	// Defaults to QueueDefault.
	Queue int
	// Workers is how many events are posted at once.
	// Defaults to WorkersDefault.
	Workers int
	// Attempts is how many times one event is posted at most.
	// Defaults to AttemptsDefault.
	Attempts int
	// Backoff is the wait before the first retry, doubled for each next.
	// Defaults to BackoffDefault.
	Backoff time.Duration
	// After waits between attempts, as time.After does; tests make it
	// return at once.
	// Defaults to time.After.
	After func(time.Duration) <-chan time.Time
	// Logger logs lost events (and failed attempts at debug level).
	// Defaults to a discarding logger.
	Logger *slog.Logger
}

// Sender delivers events asynchronously, so that a slow or failing webhook
// never holds up the caller (a task handler deciding a gate): Send queues
// the event and returns, a few goroutines post queued events and retry
// those that met a network error, a 5xx or a 429, with backoff. An event
// that cannot be queued or delivered is dropped and counted (LostCounts).
// Delivery is at least once per Send: a post whose answer was lost is
// retried, and receivers should tolerate duplicates.
//
// The goroutines start when events are queued and end when the queue is
// empty, so an idle Sender holds none and one that is never closed leaks
// none. Close drains the queue before a process exits. Safe for
// concurrent use.
type Sender struct {
	cfg   SenderConfig
	queue chan item

	mu      sync.Mutex // guards closed, running, and starting a worker
	closed  bool
	running int
	wg      sync.WaitGroup

	// closing is closed by Close: the attempts left are made without
	// waiting out their backoff.
	closing   chan struct{}
	closeOnce sync.Once
	// stop cancels posts and backoffs in progress when Close's deadline ends.
	stop   context.Context
	cancel context.CancelFunc

	sent atomic.Int64
	lost sync.Map // reason → *atomic.Int64
}

type item struct {
	url string
	e   Event
}

// NewSender returns a Sender.
func NewSender(cfg SenderConfig) *Sender {
	cfg.Poster = cmp.Or(cfg.Poster, &Poster{})
	cfg.Queue = cmp.Or(cfg.Queue, QueueDefault)
	cfg.Workers = cmp.Or(cfg.Workers, WorkersDefault)
	cfg.Attempts = cmp.Or(cfg.Attempts, AttemptsDefault)
	cfg.Backoff = cmp.Or(cfg.Backoff, BackoffDefault)
	if cfg.After == nil {
		cfg.After = time.After
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	s := &Sender{cfg: cfg, queue: make(chan item, cfg.Queue), closing: make(chan struct{})}
	s.stop, s.cancel = context.WithCancel(context.Background())
	for _, r := range LostReasons {
		s.lost.Store(r, new(atomic.Int64))
	}
	return s
}

// Send queues e for delivery to url and returns at once. It reports
// whether e was queued: false when the queue is full or the Sender is
// closed, and e is then counted as lost. An empty url does nothing.
func (s *Sender) Send(url string, e Event) bool {
	if url == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.drop(LostClosed, e, errors.New("sender closed"))
		return false
	}
	select {
	case s.queue <- item{url: url, e: e}:
	default:
		s.drop(LostQueueFull, e, fmt.Errorf("%d events already queued", s.cfg.Queue))
		return false
	}
	// A worker leaves only under mu with the queue empty, so the event
	// just queued has a worker: a running one, or this new one.
	if s.running < s.cfg.Workers {
		s.running++
		s.wg.Add(1)
		go s.work()
	}
	return true
}

func (s *Sender) work() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		select {
		case it := <-s.queue:
			s.mu.Unlock()
			s.deliver(it)
		default:
			s.running--
			s.mu.Unlock()
			return
		}
	}
}

// deliver posts it until it is delivered, rejected, out of attempts, or
// the Sender gives up at Close's deadline.
func (s *Sender) deliver(it item) {
	wait := s.cfg.Backoff
	for attempt := 1; ; attempt++ {
		if s.stop.Err() != nil {
			s.drop(LostClosed, it.e, errors.New("sender closed before delivery"))
			return
		}
		err := s.cfg.Poster.Post(s.stop, it.url, it.e)
		if err == nil {
			s.sent.Add(1)
			return
		}
		switch {
		case s.stop.Err() != nil:
			s.drop(LostClosed, it.e, err)
			return
		case !Retryable(err):
			s.drop(LostRejected, it.e, err)
			return
		case attempt >= s.cfg.Attempts:
			s.drop(LostRetries, it.e, fmt.Errorf("%d attempts: %w", attempt, err))
			return
		}
		s.cfg.Logger.Debug("webhook attempt failed; retrying", "rollout", it.e.Rollout, "kind", it.e.Kind, "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-s.cfg.After(wait):
		case <-s.closing:
		case <-s.stop.Done():
		}
		wait *= 2
	}
}

// drop counts and logs a lost event. err names only the webhook's host.
func (s *Sender) drop(reason string, e Event, err error) {
	if c, ok := s.lost.Load(reason); ok {
		c.(*atomic.Int64).Add(1)
	}
	s.cfg.Logger.Warn("webhook lost", "rollout", e.Rollout, "kind", e.Kind, "reason", reason, "err", err)
}

// Close stops taking events and waits until every queued event is
// delivered or dropped. Attempts left are made without waiting out their
// backoff, so that a process does not linger for a receiver that refuses
// connections. When ctx ends first, posts in progress are cancelled, the
// events left are counted lost (LostClosed) and Close returns ctx's
// error. Calling Close again waits the same way.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeOnce.Do(func() { close(s.closing) })
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return fmt.Errorf("notify: close: webhook events left undelivered: %w", context.Cause(ctx))
	}
}

// SentCount returns how many events were delivered.
func (s *Sender) SentCount() int64 { return s.sent.Load() }

// LostCounts returns how many events were lost, by reason (every reason
// of LostReasons is present).
func (s *Sender) LostCounts() map[string]int64 {
	out := make(map[string]int64, len(LostReasons))
	s.lost.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// StatusError is a webhook's answer outside 2xx.
type StatusError struct {
	Code   int
	Status string
}

func (e *StatusError) Error() string { return "answered " + e.Status }

// Retryable reports whether a failed post may succeed when tried again: a
// network error, a timeout, a 5xx or a 429 (Too Many Requests). Other
// statuses mean the request itself is refused.
func Retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code >= 500 || se.Code == 429
	}
	return err != nil && !errors.Is(err, errEncode) && !errors.Is(err, errRequest)
}
