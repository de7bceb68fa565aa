package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

type pastClock struct{ ago time.Duration }

func (c pastClock) Now() time.Time { return time.Now().Add(-c.ago) }

// TestPruneCommand: prune --dry-run names what it would delete and
// deletes nothing; prune deletes it; a rollout younger than --older-than
// stays; bad values are usage errors.
func TestPruneCommand(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	ctx := t.Context()
	for _, x := range []struct {
		id  string
		ago time.Duration
	}{{"ancient", 40 * 24 * time.Hour}, {"recent", 2 * time.Hour}} {
		l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix, Clock: pastClock{x.ago}})
		spec := rollout.Spec{ID: x.id, PlanHash: "h", API: "v3", Waves: []rollout.Wave{{Size: 2}}}
		if _, err := l.Create(ctx, spec, []rollout.Target{{InstanceID: x.id + "-1"}, {InstanceID: x.id + "-2"}}, ledger.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := l.Activate(ctx, spec); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Abort(ctx, x.id, "test"); err != nil {
			t.Fatal(err)
		}
	}
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr, "FLEETRESET_NAMESPACE": ns}

	env, out, errb := testEnv(vars)
	if code := Main(ctx, env, []string{"prune", "--dry-run"}); code != 0 {
		t.Fatalf("prune --dry-run exited %d: %s %s", code, out, errb)
	}
	if s := out.String(); !strings.Contains(s, "ancient") || strings.Contains(s, "recent") || !strings.Contains(s, "Would delete 1 rollout") {
		t.Errorf("prune --dry-run said:\n%s", s)
	}
	if _, err := l.Get(ctx, "ancient"); err != nil {
		t.Errorf("the dry run deleted: %v", err)
	}

	env, out, errb = testEnv(vars)
	if code := Main(ctx, env, []string{"prune", "--keep", "3"}); code != 0 {
		t.Fatalf("prune exited %d: %s %s", code, out, errb)
	}
	if s := out.String(); !strings.Contains(s, "ancient") || !strings.Contains(s, "Deleted 1 rollout") {
		t.Errorf("prune said:\n%s", s)
	}
	if _, err := l.Get(ctx, "ancient"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("after prune, Get(ancient) = %v; want ErrNotFound", err)
	}
	if _, err := l.Get(ctx, "recent"); err != nil {
		t.Errorf("prune deleted a rollout younger than --older-than: %v", err)
	}

	env, out, errb = testEnv(vars)
	if code := Main(ctx, env, []string{"prune", "--older-than", "1h"}); code != 0 || !strings.Contains(out.String(), "recent") || !strings.Contains(errb.String(), "new name") {
		t.Errorf("prune --older-than 1h exited %d:\n%s\n%s", code, out, errb)
	}
	for _, bad := range [][]string{{"prune", "--older-than", "0s"}, {"prune", "--keep", "-1"}, {"prune", "extra"}} {
		env, out, errb := testEnv(vars)
		if code := Main(ctx, env, bad); code != exitUsage {
			t.Errorf("%v exited %d; want %d: %s %s", bad, code, exitUsage, out, errb)
		}
	}
}
