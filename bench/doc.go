// Package bench holds fleetreset's end-to-end benchmarks (issue 7): each one
// runs fleetreset and a bare baseline side by side in the same run, against
// the same Redis, and reports the ratio, because timings on small shared
// machines are too noisy to compare across runs.
//
// The package has no code of its own; the benchmarks are in its _test.go
// files. Run them against a real Redis:
//
//	FLEETRESET_TEST_REDIS=127.0.0.1:6379 go test -run '^$' -bench . -benchtime 3x -timeout 60m ./bench/
//
// Every benchmark loop iteration measures both sides; the reported metrics
// are medians over the iterations (-benchtime Nx sets how many). Without
// FLEETRESET_TEST_REDIS the benchmarks run on an in-process miniredis, which
// is several times slower than redis-server and says little about
// production. BENCHMARKS.md at the repository root has the results.
package bench
