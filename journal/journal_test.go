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
