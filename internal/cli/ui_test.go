package cli

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// awaitOutput waits until re matches what a command wrote to buf.
func awaitOutput(t *testing.T, buf *syncBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(buf.String()); m != nil {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no output matching %s within 10s; got:\n%s", re, buf)
	return nil
}

func httpGet(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// startCmd runs a long-lived command until the test ends and checks that
// it then exits 0.
func startCmd(t *testing.T, env *Env, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- Main(ctx, env, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("%s exited %d", args[0], code)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s did not stop within 15s of its context", args[0])
		}
	})
}

func TestUICommand(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	env, out, _ := testEnv(map[string]string{"REDIS_URL": "redis://" + r.Addr})
	startCmd(t, env, "ui", "--listen", "127.0.0.1:0", "--namespace", ns)
	m := awaitOutput(t, out, regexp.MustCompile(`fleetreset UI at (http://127\.0\.0\.1:\d+)/ \(read-only\)`))
	base := m[1]

	if code, body := httpGet(t, base+"/healthz", ""); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/api/rollouts", ""); code != 200 || !strings.Contains(body, `"rollouts"`) {
		t.Errorf("/api/rollouts = %d %q", code, body)
	}
	code, body := httpGet(t, base+"/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	if fams, err := p.TextToMetricFamilies(strings.NewReader(body)); err != nil || fams["fleetreset_redis_up"] == nil {
		t.Errorf("/metrics: %v; families %d", err, len(fams))
	}
	if code, _ := httpGet(t, base+"/monitoring/", ""); code != 200 {
		t.Errorf("/monitoring/ = %d", code)
	}
	// Bound to loopback, the UI answers only to this machine's names.
	if code, _ := httpGet(t, base+"/", "fleetreset.evil.example"); code != http.StatusMisdirectedRequest {
		t.Errorf("GET with a foreign Host = %d; want 421", code)
	}
	res, err := http.Post(base+"/rollouts/x/pause", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("POST pause without --allow-actions = %d; want 403", res.StatusCode)
	}
}

func TestUIBasicAuthEnv(t *testing.T) {
	r := redistest.New(t)
	const secret = "ops:Very-Secret-UI-Pass"

	env, _, errb := testEnv(map[string]string{"REDIS_URL": "redis://" + r.Addr, "UI_AUTH": "no-colon-Very-Secret"})
	if code := Main(t.Context(), env, []string{"ui", "--basic-auth-env", "UI_AUTH"}); code != exitUsage {
		t.Errorf("ui with a malformed $UI_AUTH exited %d; want %d", code, exitUsage)
	}
	if s := errb.String(); !strings.Contains(s, "$UI_AUTH must hold user:password") || strings.Contains(s, "Very-Secret") {
		t.Errorf("stderr %q; want the variable named and its value not shown", s)
	}

	env, out, errb := testEnv(map[string]string{"REDIS_URL": "redis://" + r.Addr, "UI_AUTH": secret})
	startCmd(t, env, "ui", "--listen", "127.0.0.1:0", "--basic-auth-env", "UI_AUTH", "--allow-actions")
	base := awaitOutput(t, out, regexp.MustCompile(`fleetreset UI at (http://[\d.:]+)/ \(actions enabled\)`))[1]
	if code, _ := httpGet(t, base+"/", ""); code != http.StatusUnauthorized {
		t.Errorf("GET / without credentials = %d; want 401", code)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/metrics", nil)
	req.SetBasicAuth("ops", "Very-Secret-UI-Pass")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("GET /metrics with credentials = %d; want 200", res.StatusCode)
	}
	if strings.Contains(out.String()+errb.String(), "Very-Secret") {
		t.Errorf("the basic-auth password appears in the command's output")
	}
}

// TestWorkerMetricsAddr: `worker --metrics-addr` serves /metrics.
func TestWorkerMetricsAddr(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)
	env, _, errb := testEnv(map[string]string{"REDIS_URL": "redis://" + r.Addr})
	startCmd(t, env, "worker", "--namespace", ns, "--metrics-addr", "127.0.0.1:0", "--shutdown-timeout", "1s")
	url := awaitOutput(t, errb, regexp.MustCompile(`"url":"(http://127\.0\.0\.1:\d+/metrics)"`))[1]
	code, body := httpGet(t, url, "")
	if code != 200 {
		t.Fatalf("GET %s = %d", url, code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("worker /metrics is not Prometheus text: %v", err)
	}
	for _, name := range []string{"fleetreset_resets_total", "fleetreset_redis_up", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("worker /metrics lacks %s", name)
		}
	}
	// A taken port fails the command at once.
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/metrics")
	env2, _, errb2 := testEnv(map[string]string{"REDIS_URL": "redis://" + r.Addr})
	if code := Main(t.Context(), env2, []string{"worker", "--namespace", ns, "--metrics-addr", addr}); code == 0 || !strings.Contains(errb2.String(), "--metrics-addr") {
		t.Errorf("worker on a taken metrics port exited %d: %s", code, errb2)
	}
}
