package rollout_test

import (
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
)

func ExampleSplitWaves() {
	var sizes []rollout.Size
	for _, s := range []string{"1", "5", "50%", "100%"} {
		sz, err := rollout.ParseSize(s)
		if err != nil {
			panic(err)
		}
		sizes = append(sizes, sz)
	}
	fmt.Println(rollout.SplitWaves(40, sizes))
	fmt.Println(rollout.SplitWaves(3, sizes)) // later entries are not needed
	// Output:
	// [1 5 20 14]
	// [1 2]
}

func ExampleExpand() {
	// The last size repeats; Entry says which plan entry a wave came from.
	sizes := []rollout.Size{{Count: 1}, {Percent: 25}}
	for i, st := range rollout.Expand(10, sizes) {
		fmt.Printf("wave %d: %d instances (entry %d)\n", i, st.Size, st.Entry)
	}
	// Output:
	// wave 0: 1 instances (entry 0)
	// wave 1: 3 instances (entry 1)
	// wave 2: 3 instances (entry 1)
	// wave 3: 3 instances (entry 1)
}

func ExampleWindow_Next() {
	// 22:00-02:00 on Saturday nights, Shanghai time.
	w := &rollout.Window{Start: 22 * 60, End: 2 * 60, Location: "Asia/Shanghai", Days: []int{6}}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, sh) // a Wednesday morning
	open, _ := w.Contains(now)
	next, _ := w.Next(now)
	fmt.Println(open, next.Format("Mon 2006-01-02 15:04"))
	// Output: false Sat 2026-12-05 22:00
}
