package health

import "testing"

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://10.0.0.1:8080/healthz", "http://10.0.0.1:8080/healthz"},
		{"http://10.0.0.1", "http://10.0.0.1"},
		{"http://admin:s3cret@10.0.0.1/x", "http://xxxxx@10.0.0.1/x"},
		{"http://a@b:c@10.0.0.1/", "http://xxxxx@10.0.0.1/"},                           // the last @ ends the userinfo
		{"http://10.0.0.1/x?token=s3cret&full", "http://10.0.0.1/x?token=xxxxx&xxxxx"}, // a bare value may be a token too
		{"http://10.0.0.1/x#frag", "http://10.0.0.1/x"},
		{"http://{privateIp}/a@b", "http://{privateIp}/a@b"}, // @ in the path is not userinfo
		{"https://u:p@{name}.internal/?k={instanceId}", "https://xxxxx@{name}.internal/?k=xxxxx"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
