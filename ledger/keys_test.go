package ledger_test

import (
	"context"
	"crypto/sha1"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/redis/go-redis/v9"
)

// scriptCalls records the keys of every script call a client makes.
type scriptCalls struct {
	mu    sync.Mutex
	calls map[string][][]string // by SHA1
}

func (h *scriptCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record(cmd)
		return next(ctx, cmd)
	}
}

func (h *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.record(c)
		}
		return next(ctx, cmds)
	}
}

func (h *scriptCalls) record(cmd redis.Cmder) {
	args := cmd.Args()
	if name := strings.ToLower(cmd.Name()); (name != "evalsha" && name != "eval") || len(args) < 3 {
		return
	}
	n, _ := args[2].(int)
	var keys []string
	for _, k := range args[3 : 3+n] {
		keys = append(keys, fmt.Sprint(k))
	}
	// EVAL carries the source, EVALSHA its hash: key both by the hash.
	id := fmt.Sprint(args[1])
	if strings.ToLower(cmd.Name()) == "eval" {
		id = fmt.Sprintf("%x", sha1Sum(id))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls[id] = append(h.calls[id], keys)
}

// TestScriptsDeclareOneRolloutsKeys runs every ledger operation and checks
// that each script call declares keys, all of one rollout (one hash tag),
// except the claim scripts, which declare claim keys only.
func TestScriptsDeclareOneRolloutsKeys(t *testing.T) {
	r := redistest.New(t)
	h := &scriptCalls{calls: map[string][][]string{}}
	r.Client.AddHook(h)
	// As on a cluster: claims one key a call (the batch claim scripts of
	// one server are the only two not called here).
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix, Cluster: true})
	ctx := t.Context()
	spec := rollout.Spec{ID: "r1", PlanHash: "h", Groups: []rollout.Group{{Name: "g"}}, Waves: []rollout.Wave{{Size: 3}, {Size: 1}}}
	targets := []rollout.Target{{InstanceID: "ins-a"}, {InstanceID: "ins-b"}, {InstanceID: "ins-c"}, {InstanceID: "ins-d", Wave: 1}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.Claim(ctx, spec.ID, []string{"ins-a", "ins-b", "ins-c", "ins-d"})
	must(err)
	_, err = l.Create(ctx, spec, targets, ledger.CreateOptions{})
	must(err)
	must(l.Activate(ctx, spec))
	a, _ := l.Begin(ctx, spec.ID, "ins-a", 0)
	must(l.Called(ctx, spec.ID, "ins-a", a.Token, "req-a"))
	b, _ := l.Begin(ctx, spec.ID, "ins-b", 0)
	tok, err := l.Retake(ctx, spec.ID, "ins-b", b.Token)
	must(err)
	must(l.Adopt(ctx, spec.ID, "ins-b", tok, "req-b", "seen"))
	c, _ := l.Begin(ctx, spec.ID, "ins-c", 0)
	must(l.Release(ctx, spec.ID, "ins-c", c.Token, ledger.Pending, "Busy", "busy"))
	for _, id := range []string{"ins-a", "ins-b"} {
		_, err = l.Finish(ctx, spec.ID, id, ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting}, To: ledger.Failed})
		must(err)
	}
	_, err = l.SetState(ctx, spec.ID, nil, ledger.Paused, "test")
	must(err)
	_, err = l.Begin(ctx, spec.ID, "ins-c", 0) // held
	must(err)
	_, err = l.Resume(ctx, spec.ID)
	must(err)
	_, _, err = l.Advance(ctx, spec.ID, 0, true, true, false)
	must(err)
	_, err = l.Approve(ctx, spec.ID)
	must(err)
	_, err = l.RetryFailed(ctx, spec.ID, false)
	must(err)
	_, err = l.Abort(ctx, spec.ID, "test")
	must(err)
	// A clash makes Claim judge the owner (ownerScript, on r1's keys).
	if c, err := l.Claim(ctx, "r2", []string{"ins-b", "ins-e"}); err != nil || len(c) != 0 {
		t.Fatalf("Claim of an aborted rollout's instance = %v, %v; want it free", c, err)
	}
	must(l.Unclaim(ctx, spec.ID, []string{"ins-a"}))

	for sha, calls := range h.calls {
		for _, keys := range calls {
			if len(keys) == 0 {
				t.Errorf("script %.8s called without keys", sha)
				continue
			}
			if strings.HasPrefix(keys[0], r.Prefix+"claim:") {
				if len(keys) != 1 {
					t.Errorf("script %.8s declares claim keys %q: want one claim key a call (each has its own slot)", sha, keys)
				}
				continue
			}
			tag := keys[0][:strings.Index(keys[0], "}")+1]
			for _, k := range keys {
				if tag != r.Prefix+"{"+spec.ID+"}" && tag != r.Prefix+"{r2}" || !strings.HasPrefix(k, tag+":") {
					t.Errorf("script %.8s declares %q among %q: want the keys of one rollout only, or one claim key", sha, k, keys)
				}
			}
		}
	}
	if n := len(h.calls); n != 19 {
		t.Errorf("%d distinct scripts called; want all 19 of scripts.go but the two batch claim scripts", n)
	}
}

// TestScriptsBuildNoKeysFromArguments: every key a script passes to redis.call is a KEYS entry, a sib of one, or a local
// bound to one of those; none is built from ARGV (the way every key was
// built from a key base in ARGV[1] before).
func TestScriptsBuildNoKeysFromArguments(t *testing.T) {
	src, err := os.ReadFile("scripts.go")
	if err != nil {
		t.Fatal(err)
	}
	scripts := regexp.MustCompile("(?s)var (\\w+) = redis\\.NewScript\\([^`]*`(.*?)`\\)").FindAllSubmatch(src, -1)
	if len(scripts) != 21 {
		t.Fatalf("found %d scripts in scripts.go; want 21", len(scripts))
	}
	call := regexp.MustCompile(`redis\.call\('(\w+)'(?:,\s*([^,)]+))?`)
	local := regexp.MustCompile(`(?m)(?:local|for \w+,)\s+([\w, ]+?)\s+(?:=|in ipairs\()\s*(.+)$`)
	keyExpr := regexp.MustCompile(`^(KEYS\[[^\]]+\]|sib\(.*|unpack\(KEYS.*)$`)
	for _, s := range scripts {
		name, body := string(s[1]), string(s[2])
		// Locals bound to keys: each name with its expression, by position,
		// or every element of a table a for loop ranges over.
		bound := map[string]bool{}
		for _, m := range local.FindAllStringSubmatch(body, -1) {
			names, exprs := splitTop(m[1]), splitTop(strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(m[2], "{"), ") do"), "}"))
			if strings.HasPrefix(m[0], "for ") {
				all := true
				for _, e := range exprs {
					all = all && (e == "KEYS" || keyExpr.MatchString(e) || bound[e])
				}
				bound[names[0]] = all
				continue
			}
			for i, n := range names {
				bound[n] = i < len(exprs) && keyExpr.MatchString(exprs[i])
			}
		}
		for _, m := range call.FindAllStringSubmatch(body, -1) {
			if m[1] == "TIME" {
				continue
			}
			if arg := m[2]; !keyExpr.MatchString(arg) && !bound[arg] {
				t.Errorf("%s: redis.call('%s', %s): the key is not from KEYS", name, m[1], arg)
			}
		}
	}
}

// splitTop splits s at the commas outside parentheses and brackets.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

func sha1Sum(s string) [20]byte { return sha1.Sum([]byte(s)) }
