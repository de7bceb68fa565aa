package alarm_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine is still running
// after they all finished.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
