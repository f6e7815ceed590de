package envd_test

import (
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/internal/envd"
)

func TestSign(t *testing.T) {
	tests := []struct {
		name                  string
		path, op, user, token string
		exp                   time.Time
		want                  string
	}{
		// Captured from e2b@2.51.0's downloadUrl with the access token tok123.
		{"sdk capture", "/tmp/a.txt", "read", "", "tok123", time.Time{}, "v1_/4w83RTHG7J2bqrGEvKOpzew3MlWhhK5CsgBpAhTMqw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := envd.Sign(tt.path, tt.op, tt.user, tt.token, tt.exp); got != tt.want {
				t.Errorf("Sign = %s, want %s", got, tt.want)
			}
		})
	}
	a := envd.Sign("/p", "read", "", "t", time.Unix(100, 0))
	for _, other := range []string{
		envd.Sign("/p", "write", "", "t", time.Unix(100, 0)),
		envd.Sign("/p", "read", "root", "t", time.Unix(100, 0)),
		envd.Sign("/p", "read", "", "t", time.Unix(101, 0)),
		envd.Sign("/p", "read", "", "u", time.Unix(100, 0)),
	} {
		if other == a {
			t.Errorf("signatures of different requests collide: %s", a)
		}
	}
}
