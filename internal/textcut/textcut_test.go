package textcut

import "testing"

func TestOneLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{" a\n\tb ", "a b"},
		{"abcdef", "abcd…"},
		{"ab€def", "ab…"}, // € is 3 bytes: a cut inside it backs off to its start
		{"abcd", "abcd"},
	} {
		if got := OneLine(c.in, 4); got != c.want {
			t.Errorf("OneLine(%q, 4) = %q; want %q", c.in, got, c.want)
		}
	}
}

func TestFirstLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"\n  \n  line  \nsecond", "line"},
		{"", ""},
		{"  \n\t\n", ""},
		{"a very long line", "a ve…"},
	} {
		if got := FirstLine(c.in, 4); got != c.want {
			t.Errorf("FirstLine(%q, 4) = %q; want %q", c.in, got, c.want)
		}
	}
}
