package ledger

// SweepChunk is sweepChunk, for tests.
const SweepChunk = sweepChunk

// ObserveSweeps makes l tell f how many instances each call of the abort
// and retry-failed scripts examined.
func ObserveSweeps(l *Ledger, f func(examined int)) { l.sweepObserver = f }
