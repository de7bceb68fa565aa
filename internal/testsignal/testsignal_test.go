package testsignal

import (
	"fmt"
	"testing"
	"time"
)

type recorder struct {
	errs, fatals []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Errorf(f string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(f, a...)) }
func (r *recorder) Fatalf(f string, a ...any) { r.fatals = append(r.fatals, fmt.Sprintf(f, a...)) }

func TestSignal(t *testing.T) {
	var inert Signal[int]
	inert.Signal(1) // unarmed: nothing happens, nothing blocks

	var s Signal[int]
	s.Init(t, 3)
	go func() {
		for i := range 3 {
			s.Signal(i)
		}
	}()
	if got := s.WaitFor(time.Minute, func(v int) bool { return v == 2 }); got != 2 {
		t.Errorf("WaitFor = %d; want 2", got)
	}

	rec := &recorder{}
	var full Signal[int]
	full.Init(rec, 1)
	full.Signal(1)
	full.Signal(2)
	if len(rec.errs) != 1 {
		t.Errorf("an overflowing signal reported %d errors; want 1", len(rec.errs))
	}
	if got := full.WaitFor(10*time.Millisecond, func(v int) bool { return v == 5 }); got != 0 || len(rec.fatals) != 1 {
		t.Errorf("WaitFor without a match = %d, %d fatals; want 0, 1", got, len(rec.fatals))
	}
}
