package cvmsim

import (
	"strings"
	"testing"
)

// TestValidPassword pins the §5 rules of both generations, the v2 limits
// being the spec's and the v3 ones the current SDK docs'.
func TestValidPassword(t *testing.T) {
	tests := []struct {
		name string
		gen  generation
		os   string
		pw   string
		want bool
	}{
		// v2 Linux: 8–16, 2 of {letters, digits, specials}.
		{"v2_linux_letters_digits", genV2, OSLinux, "abcdefg1", true},
		{"v2_linux_letters_special", genV2, OSLinux, "abcdefg!", true},
		{"v2_linux_upper_lower_is_one_class", genV2, OSLinux, "abcdEFGH", false},
		{"v2_linux_too_short", genV2, OSLinux, "abcde1!", false},
		{"v2_linux_16", genV2, OSLinux, "abcdefgh1234567!", true},
		{"v2_linux_17", genV2, OSLinux, "abcdefgh12345678!", false},
		{"v2_linux_pipe_and_backtick", genV2, OSLinux, "abcdefg|`", true},
		{"v2_linux_space", genV2, OSLinux, "abcd efg1", false},
		{"v2_linux_non_ascii", genV2, OSLinux, "abcdefg1é", false},
		{"v2_linux_underscore_not_special", genV2, OSLinux, "abcdefg_1", false},
		// v2 Windows: 12–16, 3 of {lower, upper, digits, specials without |}.
		{"v2_windows_three_classes", genV2, OSWindows, "Abcdefghijk1", true},
		{"v2_windows_two_classes", genV2, OSWindows, "abcdefghijk1", false},
		{"v2_windows_11", genV2, OSWindows, "Abcdefghij1", false},
		{"v2_windows_17", genV2, OSWindows, "Abcdefghijklmno1!", false},
		{"v2_windows_pipe", genV2, OSWindows, "Abcdefghijk1|", false},
		{"v2_windows_other_special", genV2, OSWindows, "abcdefghijk1!", true},
		// v3 Linux: 8–30, 2 of {lower, upper, digits, specials}.
		{"v3_linux_upper_lower", genV3, OSLinux, "abcdEFGH", true},
		{"v3_linux_one_class", genV3, OSLinux, "abcdefgh", false},
		{"v3_linux_30", genV3, OSLinux, strings.Repeat("a", 29) + "1", true},
		{"v3_linux_31", genV3, OSLinux, strings.Repeat("a", 30) + "1", false},
		{"v3_linux_7", genV3, OSLinux, "abcdef1", false},
		// v3 Windows: 12–30, 3 of the same 4, pipe allowed.
		{"v3_windows_pipe", genV3, OSWindows, "abcdefghijk1|", true},
		{"v3_windows_two_classes", genV3, OSWindows, "abcdefghijk1", false},
		{"v3_windows_30", genV3, OSWindows, "Ab1" + strings.Repeat("x", 27), true},
		{"v3_windows_31", genV3, OSWindows, "Ab1" + strings.Repeat("x", 28), false},
		{"v3_windows_11", genV3, OSWindows, "Abcdefghij1", false},
		{"empty", genV3, OSLinux, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validPassword(tt.gen, tt.os, tt.pw); got != tt.want {
				t.Fatalf("validPassword(%d, %s, %q) = %v; want %v", tt.gen, tt.os, tt.pw, got, tt.want)
			}
		})
	}
}

func TestValidHostName(t *testing.T) {
	tests := []struct {
		name string
		os   string
		host string
		want bool
	}{
		{"linux_dotted", OSLinux, "web-1.prod.example", true},
		{"linux_leading_dot", OSLinux, ".web", false},
		{"linux_double_dot", OSLinux, "web..prod", false},
		{"linux_double_hyphen", OSLinux, "web--1", false},
		{"linux_trailing_hyphen", OSLinux, "web-", false},
		{"linux_one_char", OSLinux, "w", false},
		{"linux_61", OSLinux, strings.Repeat("a", 61), false},
		{"windows_ok", OSWindows, "WEB-01", true},
		{"windows_dot", OSWindows, "web.01", false},
		{"windows_all_digits", OSWindows, "12345", false},
		{"windows_16", OSWindows, strings.Repeat("a", 16), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validHostName(tt.os, tt.host); got != tt.want {
				t.Fatalf("validHostName(%s, %q) = %v; want %v", tt.os, tt.host, got, tt.want)
			}
		})
	}
}
