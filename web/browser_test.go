//go:build browser

// The browser test drives headless Chromium (Debian package chromium)
// through the DevTools protocol with chromedp: it loads the rollout pages
// and the asynq UI during a simulated rollout, clicks pause, resume and
// approve, checks what the pages show, and saves screenshots. It fails, never
// skips, when Chromium is missing. Run it with
//
//	go test -tags browser ./web/
//
// Screenshots go to $FLEETRESET_SCREENSHOT_DIR, else to the test's artifact
// directory (kept with go test -artifacts -outputdir DIR).
package web_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/web"
)

// chromium finds the browser: $FLEETRESET_CHROMIUM, else the usual names.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FLEETRESET_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium not found: install it (apt-get install -y chromium) or set FLEETRESET_CHROMIUM")
	return ""
}

// browser is a headless Chromium for one test. It collects JavaScript
// exceptions and console errors of the pages it loads.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{ctx: ctx}
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
	})
	messages := chromedp.Console(ctx)
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				b.mu.Lock()
				b.errors = append(b.errors, m.String()+" at "+m.URL)
				b.mu.Unlock()
			}
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return b
}

// do runs steps with a timeout, failing the test on error.
func (b *browser) do(t *testing.T, what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, b *browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// clickAndLoad clicks a button and waits for the page it leads to.
func (b *browser) clickAndLoad(t *testing.T, sel string) {
	t.Helper()
	get(t, b, "click "+sel, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
}

// poll waits until the JavaScript expression is true.
func (b *browser) poll(t *testing.T, what string, timeout time.Duration, expr string) {
	t.Helper()
	get(t, b, what, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
}

func (b *browser) pageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.errors
	b.errors = nil
	return out
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("FLEETRESET_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.ArtifactDir()
}

func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	png := get(t, b, "screenshot "+name, chromedp.FullScreenshot(100))
	if len(png) < 1000 {
		t.Fatalf("screenshot %s is %d bytes", name, len(png))
	}
	path := filepath.Join(screenshotDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func TestBrowser(t *testing.T) {
	tb := setup(t, setupOpts{allowActions: true})
	tb.apply(t, "webtest")
	tb.startWorkers(t, 2)
	tb.await(t, time.Minute, ledger.AwaitingApproval)
	br := newBrowser(t)
	base := tb.srv.URL
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	count := func(sel string) int {
		t.Helper()
		return get(t, br, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	}
	text := func(sel string) string {
		t.Helper()
		return strings.TrimSpace(get(t, br, "text of "+sel, chromedp.Text(css(sel))))
	}

	// The rollout list.
	br.do(t, "load /", 20*time.Second, chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("a.rid")))
	if list := text("#rollouts"); !strings.Contains(list, "webtest") || !strings.Contains(list, "awaiting approval") || count("#rollouts .bar .seg") == 0 {
		t.Errorf("the list shows %q", list)
	}
	br.screenshot(t, "rollouts.png")

	// The rollout page at the manual gate.
	br.do(t, "load the rollout page", 20*time.Second, chromedp.Navigate(base+"/rollouts/webtest"), chromedp.WaitVisible(css("#rollout-id")))
	if id, state := text("#rollout-id"), text("#rollout-state"); id != "webtest" || state != "awaiting approval" {
		t.Errorf("rollout page: id %q, state %q", id, state)
	}
	if waves, rows, segs := count("#waves tr.wave"), count("#instances tbody tr[data-state]"), count("#waves tr[data-wave='1'] .bar .seg"); waves != 2 || rows != len(fleetIDs) || segs == 0 {
		t.Errorf("rollout page: %d waves, %d instance rows, %d bar segments in wave 1", waves, rows, segs)
	}
	states := get(t, br, "instance states", chromedp.Evaluate[string](`Array.from(document.querySelectorAll("#instances tr[data-state]")).map(r => r.dataset.state).join(",")`))
	for _, want := range []string{"succeeded", "skipped", "failed", "pending"} {
		if !strings.Contains(states, want) {
			t.Errorf("no %s instance shown: %s", want, states)
		}
	}
	if f := text("#failures"); !strings.Contains(f, missingID) || !strings.Contains(f, "PreflightRefused") {
		t.Errorf("failures section: %q", f)
	}

	// The search form asks the server: one row for a whole ID, with a link
	// to the instance's page, which shows its error code.
	br.do(t, "type an instance ID", 10*time.Second, chromedp.SendKeys(css("#search input[name=id]"), missingID))
	br.clickAndLoad(t, "#search-go")
	if n, info := count("#instances tbody tr[data-state]"), text("#page-info"); n != 1 || !strings.Contains(info, "1–1 of 1") {
		t.Errorf("searching for %s shows %d rows, %q; want 1 row of 1", missingID, n, info)
	}
	br.clickAndLoad(t, "#instances tbody tr[data-state] a")
	if id, code := text("#instance-id"), text("#code"); id != missingID || code != "PreflightRefused" {
		t.Errorf("the instance page shows %q with code %q", id, code)
	}
	br.screenshot(t, "instance.png")
	br.do(t, "back to the rollout page", 20*time.Second, chromedp.Navigate(base+"/rollouts/webtest"), chromedp.WaitVisible(css("#rollout-id")))

	// Pause with a real click, then resume.
	br.do(t, "type a reason", 10*time.Second, chromedp.SendKeys(css("input[name=reason]"), "browser test"))
	br.clickAndLoad(t, "#btn-pause")
	if flash, state := text("#flash"), text("#rollout-state"); !strings.HasPrefix(flash, "Paused.") || state != "paused" {
		t.Errorf("after pause: flash %q, state %q", flash, state)
	}
	if r, _ := tb.l.Get(t.Context(), "webtest"); r.State != ledger.Paused || !strings.Contains(r.Reason, "browser test") {
		t.Errorf("ledger after pause: %s (%s)", r.State, r.Reason)
	}
	br.screenshot(t, "rollout-paused.png")
	br.clickAndLoad(t, "#btn-resume")
	if flash := text("#flash"); !strings.HasPrefix(flash, "Resumed") {
		t.Errorf("after resume: flash %q", flash)
	}
	// The gate asks for approval again, and the page's live refresh shows
	// it without a reload; approve, and watch the rollout complete.
	br.poll(t, "live refresh to awaiting approval", 30*time.Second, `document.querySelector("#rollout-state").innerText.trim() === "awaiting approval"`)
	br.clickAndLoad(t, "#btn-approve")
	if flash := text("#flash"); !strings.HasPrefix(flash, "Gate after wave 1 approved") {
		t.Errorf("after approve: flash %q", flash)
	}
	br.poll(t, "live refresh to completed", 60*time.Second, `document.querySelector("#rollout-state").innerText.trim() === "completed"`)
	br.poll(t, "wave 2 bar", 10*time.Second, `document.querySelectorAll("#waves tr[data-wave='2'] .bar .seg.succeeded").length === 1`)
	tb.await(t, 10*time.Second, ledger.Completed)
	br.screenshot(t, "rollout-completed.png")

	// The asynq UI, mounted read-only by a second UI server on the same Redis.
	ro, err := web.New(web.Config{Ledger: tb.l, RedisConnOpt: tb.r.ConnOpt(), Queues: tb.ctl.Queues()})
	if err != nil {
		t.Fatal(err)
	}
	roSrv := httptest.NewServer(ro)
	defer func() {
		roSrv.Close()
		ro.Close()
	}()
	br.do(t, "load /monitoring/", 30*time.Second, chromedp.Navigate(roSrv.URL+"/monitoring/"))
	if ro := get(t, br, "READ_ONLY", chromedp.Evaluate[string](`window.FLAG_READ_ONLY`)); ro != "true" {
		t.Errorf("asynqmon READ_ONLY = %q; want true", ro)
	}
	br.poll(t, "asynqmon lists our queue", 30*time.Second, fmt.Sprintf(`document.body.innerText.includes(%q)`, tb.ctl.Queues().Reset))
	if body := text("body"); !strings.Contains(body, "Queues") {
		t.Errorf("asynqmon page: %.300q", body)
	}
	br.screenshot(t, "asynqmon.png")

	// The read-only page of the same rollout has no buttons.
	br.do(t, "read-only rollout page", 20*time.Second, chromedp.Navigate(roSrv.URL+"/rollouts/webtest"), chromedp.WaitVisible(css("#readonly-note")))
	if n := count("#actions button"); n != 0 {
		t.Errorf("the read-only page shows %d buttons", n)
	}
	for _, e := range br.pageErrors() {
		// asynqmon's page loads web fonts from the internet and asks
		// /api/metrics for charts of a Prometheus we do not configure;
		// those may fail. Our own pages must be clean.
		if strings.Contains(e, "/monitoring/") || strings.Contains(e, "fonts.g") {
			t.Logf("asynqmon: %s", e)
			continue
		}
		t.Errorf("page error: %s", e)
	}
}
