package cvm

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// issuePassword is the password of issue 16: every escaping form changes it.
const issuePassword = `Ab&'c<d>"e%f+1`

func TestScrub(t *testing.T) {
	tests := []struct {
		name    string
		secrets []Secret // default: issuePassword
		msg     string
		want    string // "" means MessageWithheld
	}{
		// Each escaping form of (a 4-byte or longer piece of) the password.
		{name: "raw", msg: `bad password Ab&'c<d>"e%f+1`},
		{name: "json_html", msg: `password Ab\u0026\u0027c\u003cd\u003e\"e%f+1 rejected`},
		{name: "json_upper_hex", msg: `got \u0041\u0062\u0026\u0027`},
		{name: "json_surrogates_around", msg: `\ud83d\ude00Ab\u0026\u0027`},
		{name: "go_x_escape", msg: `Ab\x26\x27c`},
		{name: "octal_escape", msg: `Ab\046\047c`},
		{name: "backslash_before_any", msg: `Ab\&\'c`},
		{name: "html_named", msg: `Ab&amp;&#39;c&lt;d`},
		{name: "html_apos_quot", msg: `c&lt;d&gt;&quot;e and &apos;`},
		{name: "html_hex", msg: `Ab&#x26;&#x27;c`},
		{name: "html_hex_upper", msg: `&#X26;&#X27;c&#X3C;`},
		{name: "html_decimal_padded", msg: `Ab&#038;&#0039;c`},
		{name: "percent", msg: `Ab%26%27c%3Cd`},
		{name: "percent_lower", msg: `%3cd%3e%22e`},
		{name: "js_escape", msg: `%u0026%u0027c%u003C`},
		{name: "form_plus_space", secrets: []Secret{"my pass 42!"}, msg: `password=my+pass+42%21`},
		{name: "plus_kept_raw", msg: `e%f+1`}, // form decoding would turn + into a space; the raw view still matches
		// Nested and mixed forms.
		{name: "html_twice", msg: `Ab&amp;amp;&amp;#39;c`},
		{name: "percent_twice", msg: `Ab%2526%2527c`},
		{name: "json_twice", msg: `Ab\\u0026\\u0027c`},
		{name: "html_inside_json", msg: `Ab\u0026amp;\u0026#39;c`},
		{name: "percent_inside_json", msg: `Ab\u002526\u002527c`},
		{name: "json_inside_percent", msg: `Ab%5Cu0026%5Cu0027c`},
		{name: "mixed_per_character", msg: `Ab&amp;\u0027%3Cd`}, // & ' < each escaped another way
		// Pieces and cuts.
		{name: "piece_of_4", msg: `near e%f+ here`},
		{name: "piece_of_3_kept", msg: `near c<d here`, want: `near c<d here`},
		{name: "cut_in_half", msg: `password Ab&'c<`},
		{name: "cut_inside_escape_kept", msg: `password Ab\u00`, want: `password Ab\u00`}, // shows only "Ab"
		{name: "whitespace_folding_joins", secrets: []Secret{"pass word 9!"}, msg: "pass\n\t  word"},
		{name: "straddles_cap_kept", msg: strings.Repeat("x", maxMessage-2) + issuePassword,
			want: strings.Repeat("x", maxMessage-2) + "Ab…"},
		{name: "beyond_cap_kept", msg: strings.Repeat("y ", maxMessage) + issuePassword,
			want: strings.Repeat("y ", maxMessage/2-1) + "y…"},
		{name: "password_that_looks_escaped", secrets: []Secret{"P&amp;%2fw+1'x"}, msg: `got P&amp;%2fw`},
		{name: "password_that_looks_escaped_decoded", secrets: []Secret{"P&amp;%2fw+1'x"}, msg: `got P&amp;amp;%252fw`},
		{name: "second_secret", secrets: []Secret{"unrelated-1", issuePassword}, msg: `"e%f+1"`},
		// What is safe stays, on one line.
		{name: "safe_message", msg: "instance ins-1 not found", want: "instance ins-1 not found"},
		{name: "safe_multiline", msg: "502 Bad\r\n  Gateway\n", want: "502 Bad Gateway"},
		{name: "invalid_utf8", msg: "bad \xff byte", want: "bad ? byte"},
		{name: "no_secrets", secrets: []Secret{}, msg: issuePassword, want: issuePassword},
		{name: "short_secret_ignored", secrets: []Secret{"ab&"}, msg: "ab&c", want: "ab&c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []Secret{issuePassword}
			}
			want := tt.want
			if want == "" {
				want = MessageWithheld
			}
			if got := Scrub(tt.msg, secrets...); got != want {
				t.Errorf("Scrub(%q) = %q; want %q", tt.msg, got, want)
			}
		})
	}
}

// TestRedactorPieces checks the piece length of each kind of secret: 4
// bytes of a password, 8 of a SecretKey or Token, a signature only whole.
func TestRedactorPieces(t *testing.T) {
	const (
		key = "K3yS3cretABCDEFGH"
		sig = "c2lnbmF0dXJlLXNpZ25hdHVyZQ=="
	)
	r := newRedactor(Credentials{SecretKey: key}, issuePassword).withSignature(sig)
	tests := []struct {
		msg  string
		leak bool
	}{
		{"key piece S3cretAB", true},
		{"key piece S3cretA", false},
		{"key piece S3cret%41B", true},
		{"sig " + sig, true},
		{"sig " + sig[:len(sig)-1], false},
		{"password piece e%f+", true},
	}
	for _, tt := range tests {
		if got := r.clean(tt.msg) == MessageWithheld; got != tt.leak {
			t.Errorf("clean(%q) withheld = %v; want %v", tt.msg, got, tt.leak)
		}
	}
}

func TestRedactorCodeAndRequestID(t *testing.T) {
	r := newRedactor(Credentials{SecretKey: "K3yS3cretABCDEFGH"}, "MyPassword1!", "Secret123x")
	codes := []struct {
		code    string
		numeric int
		want    string
	}{
		{"InvalidParameterValue.InvalidPassword", 0, "InvalidParameterValue.InvalidPassword"}, // shares "Password" by chance: kept
		{"AuthFailure.SignatureFailure", 0, "AuthFailure.SignatureFailure"},
		{"Auth.Secret123x", 0, CodeMalformedResponse},              // the whole password
		{"Auth.Secret123x", 4100, "V2.4100"},                       // ... with a v2 code to fall back on
		{"bad code MyPassword1%21", 0, CodeMalformedResponse},      // not a code, and shows a piece
		{"odd code", 0, "odd code"},                                // not a code, but harmless
		{strings.Repeat("A", maxCode+1), 0, CodeMalformedResponse}, // too long
		{"HTTPStatus.502", 0, "HTTPStatus.502"},
	}
	for _, tt := range codes {
		if got := r.code(tt.code, tt.numeric); got != tt.want {
			t.Errorf("code(%q, %d) = %q; want %q", tt.code, tt.numeric, got, tt.want)
		}
	}
	ids := []struct{ id, want string }{
		{"6ef60bec-0242-43af-bb20-270359fb54a7", "6ef60bec-0242-43af-bb20-270359fb54a7"},
		{"123456789012", "123456789012"},
		{"", ""},
		{"r-Secret123x", ""},           // shows the password
		{"POST /v2/index.php?x=1", ""}, // not an ID: an echo
	}
	for _, tt := range ids {
		if got := r.requestID(tt.id); got != tt.want {
			t.Errorf("requestID(%q) = %q; want %q", tt.id, got, tt.want)
		}
	}
}

// FuzzScrub is the property behind the scrubber: for any printable
// password, any piece of it of 4 bytes or more, written in any one or two
// nested escaping forms the tests know (exposure_test.go) at any place in
// a message, Scrub's result is MessageWithheld or shows no piece of the
// password in any form; and it is always one valid line of bounded length.
func FuzzScrub(f *testing.F) {
	for i := range encoders {
		f.Add(issuePassword, uint8(0), uint8(14), uint8(i), uint8(0), uint16(0))
		f.Add(issuePassword, uint8(3), uint8(4), uint8(0), uint8(i), uint16(95))
		f.Add("P&amp;%2fw+1'x", uint8(1), uint8(6), uint8(i), uint8(i), uint16(97))
	}
	f.Add("my pass 42!", uint8(0), uint8(11), uint8(13), uint8(0), uint16(0))
	f.Fuzz(func(t *testing.T, password string, start, n, outer, inner uint8, pad uint16) {
		if len(password) < minPasswordPiece || len(password) > 64 {
			return
		}
		for _, c := range []byte(password) {
			if c < 0x20 || c > 0x7e { // passwords are printable ASCII
				return
			}
		}
		i := int(start) % (len(password) - minPasswordPiece + 1)
		piece := password[i : i+minPasswordPiece+int(n)%(len(password)-i-minPasswordPiece+1)]
		form := encoders[int(outer)%len(encoders)].enc(encoders[int(inner)%len(encoders)].enc(piece))
		msg := strings.Repeat("z ", int(pad)%(maxMessage/2+10)) + "rejected " + form + " sorry"
		got := Scrub(msg, Secret(password))
		if strings.ContainsAny(got, "\r\n") || len(got) > maxMessage+len("…") || !utf8.ValidString(got) {
			t.Fatalf("Scrub(%q) = %q; want one valid line of at most %d bytes", msg, got, maxMessage)
		}
		if got == MessageWithheld {
			return
		}
		if leak := exposedFragment(got, password); leak != "" {
			t.Fatalf("Scrub(%q) = %q shows the password %q, %s", msg, got, password, leak)
		}
	})
}
