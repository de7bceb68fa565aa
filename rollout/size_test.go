package rollout

import (
	"errors"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Size
	}{
		{name: "count", in: "5", want: Size{Count: 5}},
		{name: "one", in: "1", want: Size{Count: 1}},
		{name: "percent", in: "20%", want: Size{Percent: 20}},
		{name: "all", in: "100%", want: Size{Percent: 100}},
		{name: "decimal", in: "12.5%", want: Size{Percent: 12.5}},
		{name: "two-decimals", in: "0.01%", want: Size{Percent: 0.01}},
		{name: "leading-zero", in: "05", want: Size{Count: 5}}, // plain decimal, not octal
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseSize(%q) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
			}
			if back, err := ParseSize(got.String()); err != nil || back != got {
				t.Errorf("ParseSize(%q.String()=%q) = %+v, %v; want round trip", tt.in, got.String(), back, err)
			}
		})
	}
}

func TestParseSizeErrors(t *testing.T) {
	for _, in := range []string{
		"", "0", "-1", "0%", "-5%", "101%", "100.01%", "1.5", "1e2%", "+5%", "5 %",
		" 5", "%", "0.001%", "abc", "5%%", "0x10", "99999999999999999999999",
		".5%", "5.%", "NaN%", "Inf%",
	} {
		if got, err := ParseSize(in); !errors.Is(err, ErrBadSize) {
			t.Errorf("ParseSize(%q) = %+v, %v; want ErrBadSize", in, got, err)
		}
	}
}

func TestSizeResolve(t *testing.T) {
	tests := []struct {
		name  string
		size  Size
		total int
		want  int
	}{
		{name: "count", size: Size{Count: 5}, total: 3, want: 5}, // not capped: Expand caps
		{name: "exact-percent", size: Size{Percent: 20}, total: 40, want: 8},
		{name: "rounds-up", size: Size{Percent: 10}, total: 15, want: 2},
		{name: "never-empty", size: Size{Percent: 1}, total: 3, want: 1},
		{name: "float-trap", size: Size{Percent: 7}, total: 100, want: 7}, // ceil(100*0.07) is 8 in float64
		{name: "float-trap-2", size: Size{Percent: 14.29}, total: 700, want: 101},
		{name: "zero-size", size: Size{}, total: 10, want: 1},
		{name: "huge-total", size: Size{Percent: 50}, total: 1 << 62, want: 1 << 61},
		{name: "over-100", size: Size{Percent: 250}, total: 10, want: 10}, // clamped
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.size.Resolve(tt.total); got != tt.want {
				t.Errorf("%+v.Resolve(%d) = %d; want %d", tt.size, tt.total, got, tt.want)
			}
		})
	}
}
