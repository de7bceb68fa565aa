package health

import (
	"strings"

	"github.com/fleetreset/fleetreset/internal/textcut"
)

// Verdict is what one probe proves about an instance.
type Verdict string

// Verdicts; see the package doc for which errors give which.
const (
	// Pass: every check held.
	Pass Verdict = "pass"
	// Fail: the instance does not serve; its own fault.
	Fail Verdict = "fail"
	// Inconclusive: the probe proves nothing about the instance.
	Inconclusive Verdict = "inconclusive"
)

// Result is one probe's verdict on one instance.
type Result struct {
	Verdict Verdict `json:"verdict"`
	// Check names what was probed, with credentials and query values
	// redacted: "http http://10.0.0.1:8080/healthz", "tcp 10.0.0.1:22",
	// "clb lb-1/lbl-1:80", "tat agent".
	Check string `json:"check"`
	// Detail is one short line, never a secret: "status 503, want
	// 200-399", "connection refused", "timeout after 2s".
	Detail string `json:"detail"`
}

// String renders r as "verdict: check: detail" for logs and reasons.
func (r Result) String() string {
	return string(r.Verdict) + ": " + r.Check + ": " + r.Detail
}

// combine folds one instance's per-check results into one: the first
// failing check wins, else the first inconclusive one, else a pass naming
// every check and what each saw.
func combine(rs []Result) Result {
	var inconclusive *Result
	for i, r := range rs {
		switch r.Verdict {
		case Fail:
			return r
		case Inconclusive:
			if inconclusive == nil {
				inconclusive = &rs[i]
			}
		}
	}
	if inconclusive != nil {
		return *inconclusive
	}
	switch len(rs) {
	case 0:
		return Result{Verdict: Pass, Check: "none", Detail: "no checks"}
	case 1:
		return rs[0]
	}
	names := make([]string, len(rs))
	details := make([]string, len(rs))
	for i, r := range rs {
		names[i], details[i] = r.Check, r.Detail
	}
	return Result{Verdict: Pass, Check: strings.Join(names, ", "), Detail: oneLine(strings.Join(details, "; "))}
}

func oneLine(s string) string { return textcut.OneLine(s, 160) }
