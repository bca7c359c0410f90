package chaos

import (
	"strings"
	"testing"
)

// A large value reads back as its write's tag; one cut short, grown or
// mixed with another's padding matches no write.
func TestPadValue(t *testing.T) {
	for _, tag := range []string{"k1|0.1", "key:17|3.12345", ""} {
		v := padValue(tag)
		if len(v) < largeMin || len(v) >= largeMin+largeSpan {
			t.Fatalf("%q padded to %d bytes", tag, len(v))
		}
		if got := unpadValue(v); got != tag {
			t.Fatalf("unpad(pad(%q)) = %.80q", tag, got)
		}
		for _, bad := range []string{v[:len(v)-1], v + "~", v[:len(v)/2] + "x" + v[len(v)/2+1:]} {
			if got := unpadValue(bad); got == tag || !strings.Contains(got, "not a value of this run") {
				t.Fatalf("a damaged value of %q reads as %.80q", tag, got)
			}
		}
	}
	if got := unpadValue("k1|0.1"); got != "k1|0.1" {
		t.Fatalf("a small value reads as %q", got)
	}
}
