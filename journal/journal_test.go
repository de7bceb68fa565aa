package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/ledger"
)

func TestRecoverReplaysTheLastEventOfEachInstance(t *testing.T) {
	path := Path(t.TempDir(), "r1", "sha256:0123456789abcdef")
	if !strings.HasSuffix(path, "r1-0123456789ab.journal") {
		t.Errorf("Path = %s", path)
	}
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	steps := []error{
		j.Intent(ctx, "r1", "ins-a", 3, "img-old", "req-0"),
		j.Called(ctx, "r1", "ins-a", 3, "req-a"),
		j.Outcome(ctx, "r1", "ins-a", ledger.Succeeded, "", "", "img-new"),
		j.Intent(ctx, "r1", "ins-b", 5, "img-old", "req-1"),
		j.Intent(ctx, "r1", "ins-c", 6, "img-old", ""),
		j.Called(ctx, "r1", "ins-c", 6, "req-c"),
		j.WavePassed(ctx, "r1", 0),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	j.Close()
	opts, err := Recover(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ledger.InstanceState{"ins-a": ledger.Succeeded, "ins-b": ledger.Calling, "ins-c": ledger.Resetting}
	for id, st := range want {
		if got := opts.Seeds[id].State; got != st {
			t.Errorf("%s recovered as %q; want %q", id, got, st)
		}
	}
	if s := opts.Seeds["ins-b"]; s.Token != 5 || s.OldImage != "img-old" || s.OldOpRequestID != "req-1" || s.IntentAt.IsZero() {
		t.Errorf("intent of ins-b recovered as %+v", s)
	}
	if s := opts.Seeds["ins-c"]; s.RequestID != "req-c" || s.CalledAt.IsZero() {
		t.Errorf("call of ins-c recovered as %+v", s)
	}
	if opts.Wave != 1 || opts.Seq != 1 {
		t.Errorf("Wave, Seq = %d, %d; want 1, 1", opts.Wave, opts.Seq)
	}
}

func TestRecoverToleratesOnlyATornLastLine(t *testing.T) {
	dir := t.TempDir()
	good := `{"t":"intent","i":"ins-a","tok":1,"at":1}` + "\n"
	torn := filepath.Join(dir, "torn.journal")
	os.WriteFile(torn, []byte(good+`{"t":"called","i":"ins-a`), 0o600)
	opts, err := Recover(torn)
	if err != nil || opts.Seeds["ins-a"].State != ledger.Calling {
		t.Errorf("torn last line: %+v, %v; want the intent kept", opts.Seeds, err)
	}
	corrupt := filepath.Join(dir, "corrupt.journal")
	os.WriteFile(corrupt, []byte("garbage\n"+good), 0o600)
	if _, err := Recover(corrupt); err == nil {
		t.Errorf("a bad line before good ones was accepted")
	}
	if opts, err := Recover(filepath.Join(dir, "missing.journal")); err != nil || len(opts.Seeds) != 0 {
		t.Errorf("missing journal: %+v, %v; want a fresh start", opts, err)
	}
}

func TestOpenLocksOutASecondRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.journal")
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open file descriptions, so a second Open in
	// this process stands in for a second process.
	if _, err := Open(path); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v; want ErrLocked", err)
	}
	j.Close()
	j2, err := Open(path)
	if err != nil {
		t.Errorf("Open after Close = %v", err)
	} else {
		j2.Close()
	}
}

// TestCheckScope: a journal resumes only runs against the endpoint, region
// and SecretId its calls were made against.
func TestCheckScope(t *testing.T) {
	dir := t.TempDir()
	a := Scope{Endpoint: "http://127.0.0.1:8080", Region: "ap-guangzhou", SecretID: "AKIDa"}
	write := func(name string, scopes ...Scope) string {
		t.Helper()
		path := filepath.Join(dir, name+".journal")
		j, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		for _, s := range scopes {
			if err := j.RecordScope(s); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Intent(t.Context(), "r", "ins-a", 1, "img-old", ""); err != nil {
			t.Fatal(err)
		}
		return path
	}
	scoped := write("scoped", a)
	legacy := write("legacy")
	adopted := write("adopted", Scope{Endpoint: "http://old", Region: "ap-guangzhou"}, a)
	with := func(f func(*Scope)) Scope { s := a; f(&s); return s }
	tests := []struct {
		name     string
		path     string
		want     Scope
		refused  bool
		recorded bool
	}{
		{"same", scoped, a, false, true},
		{"other-endpoint", scoped, with(func(s *Scope) { s.Endpoint = "http://127.0.0.1:9090" }), true, true},
		{"other-region", scoped, with(func(s *Scope) { s.Region = "ap-shanghai" }), true, true},
		{"other-key", scoped, with(func(s *Scope) { s.SecretID = "AKIDb" }), true, true},
		{"temporary-credentials", scoped, with(func(s *Scope) { s.SecretID = "" }), false, true}, // a rotating SecretId identifies nothing
		{"legacy", legacy, a, true, false},
		{"last-scope-wins", adopted, a, false, true},
		{"missing", filepath.Join(dir, "missing.journal"), a, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckScope(tc.path, tc.want)
			var se *ScopeError
			if got := errors.As(err, &se); got != tc.refused {
				t.Fatalf("CheckScope(%s, %v) = %v; want refused %v", tc.name, tc.want, err, tc.refused)
			}
			if se != nil && se.Recorded != tc.recorded {
				t.Errorf("Recorded = %v; want %v", se.Recorded, tc.recorded)
			}
		})
	}
	// Scope events do not disturb recovery.
	if opts, err := Recover(adopted); err != nil || len(opts.Seeds) != 1 || opts.Seeds["ins-a"].State != ledger.Calling {
		t.Errorf("Recover(adopted) = %+v, %v; want ins-a calling only", opts.Seeds, err)
	}
}

func TestOthers(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"web-0123456789ab.journal", "web-ba9876543210.journal", "web-2-0123456789ab.journal", "webx-0123456789ab.journal"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}
	got, err := Others(dir, "web", "sha256:0123456789abcdef")
	if err != nil || len(got) != 1 || filepath.Base(got[0]) != "web-ba9876543210.journal" {
		t.Errorf("Others = %v, %v; want only web-ba9876543210.journal", got, err)
	}
}
