//go:build unix

package journal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked is returned by Open when another process holds the journal.
var ErrLocked = errors.New("journal: another fleetreset run holds this journal")

// lock takes an exclusive advisory lock on f for the life of the process:
// two `fleetreset run` of one plan, each with its own embedded Redis, would
// otherwise both reset every instance.
func lock(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s", ErrLocked, f.Name())
		}
		return fmt.Errorf("journal: lock %s: %w", f.Name(), err)
	}
	return nil
}
