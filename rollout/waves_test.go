package rollout

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sizes(t testing.TB, in ...string) []Size {
	t.Helper()
	out := make([]Size, len(in))
	for i, s := range in {
		sz, err := ParseSize(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sz
	}
	return out
}

func TestSplitWaves(t *testing.T) {
	tests := []struct {
		name  string
		total int
		sizes []string
		want  []int
	}{
		{name: "demo", total: 40, sizes: []string{"1", "5", "50%", "100%"}, want: []int{1, 5, 20, 14}},
		{name: "last-repeats", total: 10, sizes: []string{"1", "3"}, want: []int{1, 3, 3, 3}},
		{name: "last-repeats-short-tail", total: 9, sizes: []string{"1", "3"}, want: []int{1, 3, 3, 2}},
		{name: "percent-of-whole-plan", total: 100, sizes: []string{"10%", "20%"}, want: []int{10, 20, 20, 20, 20, 10}},
		{name: "percent-rounds-up", total: 15, sizes: []string{"10%"}, want: []int{2, 2, 2, 2, 2, 2, 2, 1}},
		{name: "percent-never-empty", total: 3, sizes: []string{"1%"}, want: []int{1, 1, 1}},
		{name: "capped-at-remaining", total: 3, sizes: []string{"1", "5", "50%", "100%"}, want: []int{1, 2}},
		{name: "one-instance", total: 1, sizes: []string{"5", "100%"}, want: []int{1}},
		{name: "all-at-once", total: 7, sizes: []string{"100%"}, want: []int{7}},
		{name: "empty-plan", total: 0, sizes: []string{"1"}, want: []int{}},
		{name: "no-sizes", total: 4, sizes: nil, want: []int{4}},
		{name: "ansible-doc", total: 100, sizes: []string{"1", "5", "20%"}, want: []int{1, 5, 20, 20, 20, 20, 14}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitWaves(tt.total, sizes(t, tt.sizes...))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("SplitWaves(%d, %v) mismatch (-want +got):\n%s", tt.total, tt.sizes, diff)
			}
		})
	}
}

func TestExpandEntries(t *testing.T) {
	got := Expand(12, sizes(t, "1", "5", "2"))
	want := []Step{{Entry: 0, Size: 1}, {Entry: 1, Size: 5}, {Entry: 2, Size: 2}, {Entry: 2, Size: 2}, {Entry: 2, Size: 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Expand mismatch (-want +got):\n%s", diff)
	}
	if got := Expand(3, nil); !cmp.Equal(got, []Step{{Entry: -1, Size: 3}}) {
		t.Errorf("Expand(3, nil) = %v; want one wave of 3 with Entry -1", got)
	}
	if got := Expand(-1, sizes(t, "1")); got != nil {
		t.Errorf("Expand(-1, [1]) = %v; want nil", got)
	}
}

// FuzzSplitWaves checks the wave invariants for arbitrary plans: the waves
// sum to the total, none is empty, none exceeds its configured size, and
// every instance is placed exactly once.
func FuzzSplitWaves(f *testing.F) {
	f.Add(40, "1,5,50%,100%")
	f.Add(3, "1,5,50%,100%")
	f.Add(100, "10%,20%")
	f.Add(15, "10%")
	f.Add(1, "1")
	f.Add(0, "5")
	f.Add(1000, "0.01%,33.33%")
	f.Fuzz(func(t *testing.T, total int, list string) {
		if total < 0 || total > 20000 {
			return // the invariants do not depend on size; keep runs fast
		}
		var szs []Size
		for item := range strings.SplitSeq(list, ",") {
			sz, err := ParseSize(item)
			if err != nil {
				return
			}
			szs = append(szs, sz)
		}
		if len(szs) == 0 {
			return
		}
		steps := Expand(total, szs)
		placed := make([]int, total) // placed[i] counts waves holding instance i
		next := 0
		for i, st := range steps {
			if st.Size < 1 {
				t.Fatalf("wave %d is empty: %v", i, steps)
			}
			if want := min(i, len(szs)-1); st.Entry != want {
				t.Fatalf("wave %d Entry = %d; want %d", i, st.Entry, want)
			}
			if cfg := szs[st.Entry].Resolve(total); st.Size > cfg {
				t.Fatalf("wave %d has %d instances; its size %v allows %d", i, st.Size, szs[st.Entry], cfg)
			}
			if i < len(steps)-1 && st.Size != szs[st.Entry].Resolve(total) {
				t.Fatalf("wave %d has %d, not its full size, but is not the last wave", i, st.Size)
			}
			for range st.Size {
				if next >= total {
					t.Fatalf("waves place more than %d instances: %v", total, steps)
				}
				placed[next]++
				next++
			}
		}
		for i, n := range placed {
			if n != 1 {
				t.Fatalf("instance %d placed %d times: %v", i, n, steps)
			}
		}
		if got := SplitWaves(total, szs); len(got) != len(steps) {
			t.Fatalf("SplitWaves has %d waves, Expand %d", len(got), len(steps))
		}
	})
}
